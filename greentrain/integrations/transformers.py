"""``EnergyCallback`` for the Hugging Face ``Trainer``: energy per epoch next to the metrics.

    from greentrain.integrations.transformers import EnergyCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[EnergyCallback()])

* The callback puts itself first among the Trainer's callbacks at train start, so what it adds
  to a ``logs`` dict reaches the ``report_to`` integrations (MLflow, W&B, TensorBoard,
  CodeCarbon) in the same call.
* One greentrain window per epoch, numbered from 1, from ``on_epoch_begin`` to the first log
  after ``on_epoch_end`` (the epoch's loss, or its evaluation's metrics), and one per
  evaluation (``"eval"``: from its first prediction step to its metrics' log). Every ``logs``
  dict the Trainer logs is recorded with ``client.log(step=global_step, ...)`` in the window
  that is open.
* Each window's energy (``greentrain/epoch.energy_kwh``, ``greentrain/eval.co2_g``, ...:
  :mod:`greentrain.integrations.names`) is added to the ``logs`` that close it, so the
  ``report_to`` integrations and ``trainer.state.log_history`` (``trainer_state.json``, the
  last epoch's too) get it at the trainer's step, in its epoch -- under ``greentrain run`` too
  (the wrapper answers each window's end). When nothing would be logged at an epoch's end
  (no logging, no evaluation), the callback asks the Trainer to log then; should the Trainer
  still not log (it had just logged that step), the epoch's window closes at the next epoch's
  start and its energy goes into ``log_history`` at the epoch's last step. An answer that comes
  late goes into ``log_history`` at its own step. Nothing is added where no meter measured.
* The Trainer's own MLflow or W&B run (``report_to``) is tagged ``greentrain.run_id`` and
  announced to the run, so ``greentrain run --mirror`` writes into it.
* Rank zero only (``state.is_world_process_zero``) under DDP.
* HF's own ``report_to=["codecarbon"]`` tracker is stopped at train end before the run
  closes, and its figures are recorded beside greentrain's as evidence (scope, intensity and
  the disagreement: :mod:`greentrain.integrations.evidence`), never added to them.
* The Trainer has no hook for a failed ``train()``: a run the callback opened is finalized when
  the process exits, as ``failed`` (or ``interrupted`` after Ctrl-C or SIGTERM/SIGHUP) with the
  exception Python reports, or by calling ``callback.close(error)`` where the script catches it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from greentrain.extras import missing_message
from greentrain.integrations import trainer_runs
from greentrain.integrations.evidence import codecarbon_evidence, others_evidence
from greentrain.integrations.training import TrainingRun, WindowEnergy

try:
    from transformers import TrainerCallback
except ImportError as err:
    raise ImportError(
        missing_message("greentrain.integrations.transformers", "transformers", "transformers")
    ) from err

__all__ = ["EnergyCallback"]

CONFIG_ARGS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed")


class EnergyCallback(TrainerCallback):
    """Meter each epoch and evaluation of ``Trainer.train``; see the module docstring.

    Args:
        name: the run's name when the callback meters the process itself.
        log_energy: add each window's energy and CO2e to the Trainer's logs.
        others: other meters the script runs itself, recorded as evidence at train end
            (:func:`~greentrain.integrations.evidence.others_evidence`).
        **options: :class:`~greentrain.integrations.training.TrainingRun`'s (``store=``,
            ``meters=``, ``tags=``, ``country=``, ``pue=``, ``listeners=``, ``summary=``, ...).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        log_energy: bool = True,
        others: Sequence[Any] = (),
        **options: Any,
    ):
        self.run = TrainingRun(name, **options)
        self.others = list(others)
        self.log_energy = log_energy
        self._epoch_ended = False
        self._epoch_end_step: int | None = None
        self._handler: Any = None  # the Trainer's CallbackHandler (found at train start)

    @property
    def run_id(self) -> str | None:
        """The greentrain run this callback records to (None before ``train``)."""
        return self.run.run_id

    def close(self, error: BaseException | None = None) -> None:
        """Finalize a run the callback opened, e.g. where the script catches ``error``."""
        self.run.finish(error)

    def _add(self, state: Any, logs: dict[str, Any] | None, energies: list[WindowEnergy]) -> None:
        """Energy into ``logs`` (and the log_history entry made of them) at this step; an
        answer of another step as an entry of its own."""
        if not self.log_energy:
            return
        entry = state.log_history[-1] if logs is not None and state.log_history else None
        for energy in energies:
            if logs is not None and energy.step in (None, state.global_step):
                logs.update(energy.metrics())
                if entry is not None and entry.get("step") == state.global_step:
                    entry.update(energy.metrics())
            else:
                state.log_history.append({**energy.metrics(), "step": energy.step})

    def _first(self) -> None:
        """Put this callback first among the Trainer's (its ``CallbackHandler`` is the caller
        of this hook), so its additions to ``logs`` reach the integrations."""
        frame = inspect.currentframe()
        for _ in range(4):
            frame = frame.f_back if frame is not None else None
            handler = frame.f_locals.get("self") if frame is not None else None
            callbacks = getattr(handler, "callbacks", None)
            if isinstance(callbacks, list) and self in callbacks:
                handler.callbacks = [self, *(c for c in callbacks if c is not self)]
                self._handler = handler
                return

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        config: dict[str, Any] = {"framework": "transformers"}
        model_config = getattr(model, "config", None)
        if getattr(model_config, "model_type", None):
            config["model_type"] = model_config.model_type
        config["module"] = type(model).__name__ if model is not None else None
        config.update({k: getattr(args, k, None) for k in CONFIG_ARGS})
        self._first()
        self._epoch_ended = False
        report_to = getattr(args, "report_to", None) or ()
        self.run.start(
            enabled=bool(state.is_world_process_zero),
            config=config,
            announce=lambda run_id: trainer_runs.from_active_runs(run_id, report_to),
        )

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.run.is_open("epoch"):  # no log came after the last epoch's end
            self._add(state, None, self.run.end("epoch", self._epoch_end_step))
        self._epoch_ended = False
        self.run.begin("epoch", index=int(state.epoch or 0) + 1)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any):
        self._epoch_ended, self._epoch_end_step = True, int(state.global_step)
        if self.run.is_open("epoch") and not (control.should_log or control.should_evaluate):
            control.should_log = True  # a log at the epoch's end carries its energy

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kw: Any):
        if not self.run.is_open("eval"):
            self.run.begin("eval")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
        if logs:
            self.run.log(int(state.global_step), logs)
        energies = []
        if self.run.is_open("eval") and any(str(k).startswith("eval_") for k in logs or {}):
            energies += self.run.end("eval", int(state.global_step))
        if self._epoch_ended and self.run.is_open("epoch"):
            energies += self.run.end("epoch", int(state.global_step))
        energies += [] if energies else self.run.collect()
        self._add(state, logs if isinstance(logs, dict) else None, energies)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.run.is_open("eval"):  # an evaluation that logged nothing
            self._add(state, None, self.run.end("eval", int(state.global_step)))

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any):
        self.on_evaluate(args, state, control)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        self._add(state, None, self.run.end("epoch", int(state.global_step)))  # and late ones
        self._codecarbon_evidence()
        self.run.finish(None)

    def _codecarbon_evidence(self) -> None:
        """HF's ``CodeCarbonCallback`` (``report_to=["codecarbon"]``) measured the run too:
        stop its tracker now -- this callback runs first, its ``on_train_end`` would stop it
        next (a second stop only returns the same figures) -- and hand its figures to the run
        as evidence (:mod:`greentrain.integrations.evidence`)."""
        if not self.run.active:  # off rank zero, or no run
            return
        for callback in getattr(self._handler, "callbacks", None) or ():
            tracker = getattr(callback, "tracker", None)
            if type(callback).__name__ != "CodeCarbonCallback" or tracker is None:
                continue
            if getattr(tracker, "final_emissions_data", None) is None:
                tracker.stop()
            codecarbon_evidence(tracker)
        others_evidence(self.others)

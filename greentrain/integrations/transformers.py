"""``EnergyCallback`` for the Hugging Face ``Trainer``: energy per epoch next to the metrics.

    from greentrain.integrations.transformers import EnergyCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[EnergyCallback()])

* One greentrain window per epoch and one per evaluation (``"eval"``: from its first prediction
  step to ``on_evaluate``). The Trainer logs, evaluates and saves after ``on_epoch_end``, so an
  epoch's window runs from ``on_epoch_begin`` to the next ``on_epoch_begin`` (or
  ``on_train_end``): like Lightning's, it holds the epoch's evaluation, and the metrics logged
  at the epoch's end fall inside it.
* Every ``logs`` dict the Trainer logs (loss, learning rate, ``eval_*`` metrics) is recorded with
  ``client.log(step=global_step, ...)`` in the window that is open.
* When the callback meters the process itself (no ``greentrain run`` around it), each window's
  energy (``energy/epoch_j``, ``energy/epoch_kwh``, ``energy/epoch_co2_g``; ``energy/eval_*``)
  is appended to ``trainer.state.log_history`` (saved in ``trainer_state.json``) with the epoch
  and step. The Trainer's own ``report_to`` integrations run before user callbacks, so they do
  not see it: to have the energy in MLflow or W&B use ``greentrain run --mirror`` or
  ``greentrain export --to``. Under ``greentrain run`` the energy is not known in the training
  process: nothing is added (never zeros) and the energy is in the run's record.
* Rank zero only (``state.is_world_process_zero``) under DDP.
* The Trainer has no hook for a failed ``train()``: a run the callback opened is finalized when
  the process exits, as ``failed`` (or ``interrupted`` after Ctrl-C or SIGTERM/SIGHUP) with the
  exception Python reports, or by calling ``callback.close(error)`` where the script catches it.
"""

from __future__ import annotations

from typing import Any

from greentrain.extras import missing_message
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
        log_energy: append each window's energy and CO2e to ``state.log_history``.
        **options: :class:`~greentrain.integrations.training.TrainingRun`'s (``store=``,
            ``meters=``, ``tags=``, ``country=``, ``pue=``, ``listeners=``, ``summary=``, ...).
    """

    def __init__(self, name: str | None = None, *, log_energy: bool = True, **options: Any):
        self.run = TrainingRun(name, **options)
        self.log_energy = log_energy

    @property
    def run_id(self) -> str | None:
        """The greentrain run this callback records to (None before ``train``)."""
        return self.run.run_id

    def close(self, error: BaseException | None = None) -> None:
        """Finalize a run the callback opened, e.g. where the script catches ``error``."""
        self.run.finish(error)

    def _record(self, state: Any, energy: WindowEnergy | None) -> None:
        if energy is None or not self.log_energy:
            return
        entry = {**energy.metrics(), "epoch": state.epoch, "step": state.global_step}
        state.log_history.append(entry)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any):
        config: dict[str, Any] = {"framework": "transformers"}
        model_config = getattr(model, "config", None)
        if getattr(model_config, "model_type", None):
            config["model_type"] = model_config.model_type
        config["module"] = type(model).__name__ if model is not None else None
        config.update({k: getattr(args, k, None) for k in CONFIG_ARGS})
        self.run.start(enabled=bool(state.is_world_process_zero), config=config)

    def _end_epoch(self, state: Any) -> None:
        if self.run.is_open("epoch"):
            self._record(state, self.run.end("epoch"))

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        self._end_epoch(state)  # the previous epoch, with its evaluation and logs
        self.run.begin("epoch")

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kw: Any):
        if not self.run.is_open("eval"):
            self.run.begin("eval")

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.run.is_open("eval"):
            self._record(state, self.run.end("eval"))

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any):
        self.on_evaluate(args, state, control)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
        if logs:
            self.run.log(int(state.global_step), logs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        self._end_epoch(state)
        self.run.finish(None)

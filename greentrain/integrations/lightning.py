"""``EnergyCallback`` for Lightning: energy per epoch next to the metrics, in one line.

    from greentrain.integrations.lightning import EnergyCallback
    trainer = L.Trainer(max_epochs=10, callbacks=[EnergyCallback()])

* One greentrain window per training epoch (``on_train_epoch_start`` to ``on_train_epoch_end``,
  so the epoch's validation is inside it), numbered from 1, and one per validation
  (``"eval"``, sanity checks excluded), with the validation's metrics (``val*``) logged in it.
* At each epoch's end the trainer's other ``callback_metrics`` are recorded with
  ``client.log(step=..., epoch=...)`` inside the epoch's window, at the step Lightning's
  loggers put them at.
* Each window's energy goes to the trainer's own loggers through ``pl_module.log`` under
  greentrain's names (``greentrain/epoch.energy_kwh``, ``greentrain/eval.co2_g``, ...:
  :mod:`greentrain.integrations.names`), at the same step as the epoch's metrics, so it
  appears in TensorBoard, CSV, MLflow or W&B beside the accuracy -- under ``greentrain run``
  too (the wrapper answers each window's end). An answer that comes late is logged by the
  loggers at its own step (:mod:`greentrain.integrations.training`); nothing is logged where
  no meter measured (never zeros).
* An ``MLFlowLogger`` or ``WandbLogger`` run is tagged ``greentrain.run_id`` and announced to
  the run, so ``greentrain run --mirror`` writes into it instead of making a second run.
* Rank zero only (``trainer.is_global_zero``) under DDP: the node is metered once.
* Other meters of the same fit (``others=[tracker]``: a CodeCarbon tracker, a Zeus
  ``Measurement`` or a callable returning one) are recorded at fit end as evidence beside
  greentrain's figures, never in them (:mod:`greentrain.integrations.evidence`).
* ``on_exception`` finalizes a run the callback opened as ``failed``, or ``interrupted`` after
  Ctrl-C or SIGTERM/SIGHUP.

Works with ``lightning`` (``lightning.pytorch``) and with ``pytorch_lightning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greentrain.extras import missing_message
from greentrain.integrations import names, trainer_runs
from greentrain.integrations.evidence import others_evidence
from greentrain.integrations.training import TrainingRun, WindowEnergy

try:
    import lightning.pytorch as pl
except ImportError:  # the older distribution name
    try:
        import pytorch_lightning as pl
    except ImportError as err:
        raise ImportError(
            missing_message("greentrain.integrations.lightning", "lightning", "lightning")
        ) from err

__all__ = ["EnergyCallback"]


def logging_step(trainer: Any, epoch_end: bool) -> int:
    """The step Lightning's loggers record what is logged now at (it steps back one for the
    epoch's end metrics)."""
    stepped = getattr(getattr(trainer.fit_loop, "epoch_loop", None), "_batches_that_stepped", None)
    stepped = int(stepped) if isinstance(stepped, int) else int(trainer.global_step)
    return max(0, stepped - 1) if epoch_end else stepped


class EnergyCallback(pl.Callback):
    """Meter each epoch and evaluation of ``Trainer.fit``; see the module docstring.

    Args:
        name: the run's name when the callback meters the process itself.
        log_energy: add each window's energy and CO2e to the trainer's loggers.
        others: other meters of the same fit, recorded as evidence at its end
            (:func:`~greentrain.integrations.evidence.others_evidence`).
        **options: :class:`~greentrain.integrations.training.TrainingRun`'s (``store=``,
            ``meters=``, ``tags=``, ``country=``, ``pue=``, ``listeners=``, ``summary=``,
            ``wait_s=``, ...).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        log_energy: bool = True,
        others: Sequence[Any] = (),
        **options: Any,
    ):
        super().__init__()
        self.run = TrainingRun(name, **options)
        self.others = list(others)
        self.log_energy = log_energy
        self._eval_keys: set[str] = set()

    @property
    def run_id(self) -> str | None:
        """The greentrain run this callback records to (None before ``fit``)."""
        return self.run.run_id

    def _log(self, trainer: Any, pl_module: Any, energies: list[WindowEnergy], now: int) -> None:
        if not self.log_energy:
            return
        for energy in energies:
            if energy.step is None or energy.step == now:
                for key, value in energy.metrics().items():
                    pl_module.log(key, value, on_step=False, on_epoch=True, rank_zero_only=True)
            else:  # a late answer: at its own window's step
                for lg in trainer.loggers:
                    lg.log_metrics(energy.metrics(), step=energy.step)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
        config = {"framework": "lightning", "module": type(pl_module).__name__, **hparams}
        self.run.start(
            enabled=bool(trainer.is_global_zero),
            config=config,
            announce=lambda run_id: trainer_runs.from_lightning_loggers(run_id, trainer.loggers),
        )

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._eval_keys = set()
        self.run.begin("epoch", index=int(trainer.current_epoch) + 1)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.run.begin("eval")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.run.is_open("eval"):
            return
        step = logging_step(trainer, epoch_end=False)
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        self._eval_keys = set(metrics)
        self.run.log(step, {"epoch": int(trainer.current_epoch) + 1, **metrics})
        self._log(trainer, pl_module, self.run.end("eval", step), step)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.run.is_open("epoch"):
            return
        step = logging_step(trainer, epoch_end=True)
        metrics = {
            k: v
            for k, v in trainer.callback_metrics.items()
            if k not in self._eval_keys and not names.is_greentrain(k)
        }
        self.run.log(step, {"epoch": int(trainer.current_epoch) + 1, **metrics})
        self._log(trainer, pl_module, self.run.end("epoch", step), step)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._log(trainer, pl_module, self.run.collect(), -1)
        if self.run.active:  # rank zero, in a run
            others_evidence(self.others)
        self.run.finish(None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.run.finish(exception)

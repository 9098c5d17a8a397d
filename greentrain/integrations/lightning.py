"""``EnergyCallback`` for Lightning: energy per epoch next to the metrics, in one line.

    from greentrain.integrations.lightning import EnergyCallback
    trainer = L.Trainer(max_epochs=10, callbacks=[EnergyCallback()])

* One greentrain window per training epoch (``on_train_epoch_start`` to ``on_train_epoch_end``,
  so the epoch's validation is inside it) and one per validation (``"eval"``, sanity checks
  excluded).
* At each epoch's end the trainer's ``callback_metrics`` (train and validation metrics) are
  recorded with ``client.log(step=global_step, epoch=...)`` inside the epoch's window.
* When the callback meters the process itself (no ``greentrain run`` around it), the epoch's
  energy goes to the trainer's own loggers through ``pl_module.log``: ``energy/epoch_j``,
  ``energy/epoch_kwh`` and ``energy/epoch_co2_g`` (and ``energy/eval_*`` per validation), so it
  appears in TensorBoard, CSV, MLflow or W&B loggers beside the accuracy. Under ``greentrain
  run`` the wrapper meters the job from outside and the energy is not known in the training
  process: nothing is logged to the trainer (never zeros) and the energy is in the run's record.
* Rank zero only (``trainer.is_global_zero``) under DDP: the node is metered once.
* ``on_exception`` finalizes a run the callback opened as ``failed``, or ``interrupted`` after
  Ctrl-C or SIGTERM/SIGHUP.

Works with ``lightning`` (``lightning.pytorch``) and with ``pytorch_lightning``.
"""

from __future__ import annotations

from typing import Any

from greentrain.extras import missing_message
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


class EnergyCallback(pl.Callback):
    """Meter each epoch and evaluation of ``Trainer.fit``; see the module docstring.

    Args:
        name: the run's name when the callback meters the process itself.
        log_energy: add each window's energy and CO2e to the trainer's loggers.
        **options: :class:`~greentrain.integrations.training.TrainingRun`'s (``store=``,
            ``meters=``, ``tags=``, ``country=``, ``pue=``, ``listeners=``, ``summary=``, ...).
    """

    def __init__(self, name: str | None = None, *, log_energy: bool = True, **options: Any):
        super().__init__()
        self.run = TrainingRun(name, **options)
        self.log_energy = log_energy

    @property
    def run_id(self) -> str | None:
        """The greentrain run this callback records to (None before ``fit``)."""
        return self.run.run_id

    def _log(self, pl_module: Any, energy: WindowEnergy | None) -> None:
        if energy is None or not self.log_energy:
            return
        for key, value in energy.metrics().items():
            pl_module.log(key, value, on_step=False, on_epoch=True, rank_zero_only=True)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        hparams = dict(getattr(pl_module, "hparams", {}) or {})
        config = {"framework": "lightning", "module": type(pl_module).__name__, **hparams}
        self.run.start(enabled=bool(trainer.is_global_zero), config=config)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.begin("epoch", index=int(trainer.current_epoch))

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.run.begin("eval")

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.run.is_open("eval"):
            self._log(pl_module, self.run.end("eval"))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.run.is_open("epoch"):
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if not k.startswith("energy/")}
        self.run.log(int(trainer.global_step), {"epoch": int(trainer.current_epoch), **metrics})
        self._log(pl_module, self.run.end("epoch"))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.finish(None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.run.finish(exception)

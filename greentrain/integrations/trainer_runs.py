"""The trainer's own tracker runs (MLflow, W&B): tag them with the greentrain run and tell the
run about them, so ``greentrain run --mirror`` writes into the trainer's run rather than a
second one, and an export finds it (tag ``greentrain.run_id`` on both sides).

Nothing here imports MLflow or W&B: it reads what the trainer already made (a Lightning
logger's ``experiment``, ``mlflow.active_run()``, ``wandb.run``) only where the library is
already loaded (``sys.modules``). A tracker that refuses the tag costs only the tag (logged).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from greentrain import client

logger = logging.getLogger(__name__)
TAG = "greentrain.run_id"
TRAINER = "greentrain.trainer_run"  # on the trainer's run: not greentrain's to end


def _announce(tracker: str, run: Any, greentrain_id: str, tag: Any, **where: Any) -> None:
    try:
        tag()
    except Exception as err:  # noqa: BLE001 - the trainer's tracker: tagging is best effort
        logger.warning("greentrain: could not tag the trainer's %s run %s: %s", tracker, run, err)
    client.tracker_run(tracker, str(run), **{k: v for k, v in where.items() if v})


def _mlflow(greentrain_id: str, mlflow_client: Any, run_id: str, uri: str | None) -> None:
    _announce("mlflow", run_id, greentrain_id,
              lambda: (mlflow_client.set_tag(run_id, TAG, greentrain_id),
                       mlflow_client.set_tag(run_id, TRAINER, "true")), uri=uri)  # fmt: skip


def _wandb(greentrain_id: str, run: Any) -> None:
    _announce("wandb", run.id, greentrain_id,
              lambda: run.config.update({TAG: greentrain_id, TRAINER: "true"},
                                        allow_val_change=True),
              project=getattr(run, "project", None))  # fmt: skip


def from_lightning_loggers(greentrain_id: str, loggers: Iterable[Any]) -> None:
    """Every MLflow and W&B logger of a Lightning trainer."""
    for lg in loggers:
        kind = type(lg).__name__
        if kind == "MLFlowLogger":
            uri = getattr(lg, "_tracking_uri", None)
            _mlflow(greentrain_id, lg.experiment, lg.run_id, uri)
        elif kind == "WandbLogger":
            _wandb(greentrain_id, lg.experiment)


def from_active_runs(greentrain_id: str, report_to: Iterable[str]) -> None:
    """The runs HF's ``report_to`` integrations opened in this process (MLflow's active run,
    ``wandb.run``)."""
    wanted = set(report_to or ())
    mlflow = sys.modules.get("mlflow")
    if ("mlflow" in wanted or "all" in wanted) and mlflow is not None:
        active = mlflow.active_run()
        if active is not None:
            _mlflow(greentrain_id, mlflow.MlflowClient(), active.info.run_id,
                    mlflow.get_tracking_uri())  # fmt: skip
    wandb = sys.modules.get("wandb")
    if ("wandb" in wanted or "all" in wanted) and wandb is not None and wandb.run is not None:
        _wandb(greentrain_id, wandb.run)

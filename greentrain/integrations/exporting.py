"""``greentrain export --to mlflow|wandb``: stored runs into a tracker, retriable.

* A run counts as exported only once everything reached the tracker: the mark
  (``greentrain.exported``) is written last (:meth:`close`), so a run whose export failed is
  not skipped next time.
* A failed export is never left RUNNING: the tracker run greentrain made is finished as
  FAILED (:meth:`abort`) and the error is one line (:class:`~greentrain.errors.StoreError`).
* Exporting again is idempotent: MLflow finds the run by its tag ``greentrain.run_id`` (in any
  experiment), skips it when marked, else finishes it, sending only the (name, step) pairs and
  params it does not have yet; W&B resumes the run by its id (``gt-<run id>``, or the trainer's
  run's id the record names).
* The trainer's own run (the callbacks tagged it ``greentrain.run_id``) is written into rather
  than a second run made: greentrain's names and params are added, the trainer's metrics stay
  its own and it keeps the status the trainer gave it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from greentrain.integrations import names, payload
from greentrain.integrations.trackers import MlflowTracker, WandbTracker


def _group_of(run: Mapping[str, Any]) -> str | None:
    tags = run.get("tags") if isinstance(run.get("tags"), Mapping) else {}
    sweep = tags.get("sweep")
    return sweep if isinstance(sweep, str) and sweep else None


def trainer_run(run: Mapping[str, Any], tracker: str) -> Mapping[str, Any] | None:
    """The trainer's own ``tracker`` run the record names (event ``trainer tracker run``)."""
    for event in run.get("events") or []:
        if (
            isinstance(event, Mapping)
            and event.get("event") == "trainer tracker run"
            and event.get("tracker") == tracker
        ):
            return event
    return None


def _open(tracker: MlflowTracker | WandbTracker, run: Mapping[str, Any]) -> tuple[str, bool]:
    """Open the tracker run to write ``run`` into: ``("skip", ...)`` when already whole, else
    ``("write", into_trainers_run)``."""
    run_id = payload.tracker_text(run.get("id"))
    name = str(run.get("name") or run_id)
    if isinstance(tracker, WandbTracker):
        theirs = trainer_run(run, "wandb")
        tracker.start(name, payload.tags(run), _group_of(run),
                      run=str(theirs["run"]) if theirs else None)  # fmt: skip
        return ("skip", False) if tracker.already_exported() else ("write", theirs is not None)
    found = tracker.find(run_id)
    if found is not None and found.exported:
        return "skip", False
    if found is not None:
        tracker.attach(found.run_id, owned=not found.trainer)
        return "write", found.trainer
    tracker.start(name, payload.tags(run), _group_of(run))
    return "write", False


def export_run(tracker: MlflowTracker | WandbTracker, run: Mapping[str, Any]) -> tuple[str, str]:
    """Write one stored run to ``tracker``: ``("exported" | "skipped", where or why)``."""
    run_id = payload.tracker_text(run.get("id"))
    if run.get("status") == "running":
        return "skipped", f"run {run_id} is still running; export it when it has ended"
    what, trainers = _open(tracker, run)
    if what == "skip":
        if isinstance(tracker, WandbTracker):
            tracker.run.finish()
        return "skipped", f"run {run_id} is already in {tracker.label} as {tracker.where()}"
    try:
        tracker.params(payload.params(run))
        points = payload.record_points(run)
        if trainers:  # the trainer logged its own metrics there
            points = [p for p in points if names.is_greentrain(p.key)]
        tracker.points(points)
        tracker.summary(payload.totals(run))
        tracker.tags({k: v for k, v in payload.tags(run).items() if k != "greentrain.status"})
        exit_code = run.get("exit_code")
        tracker.close(str(run.get("status")), exit_code if isinstance(exit_code, int) else None)
    except BaseException:
        try:
            tracker.abort()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    return "exported", tracker.where()


def export_runs(
    runs: Iterable[Mapping[str, Any]], tracker: MlflowTracker | WandbTracker
) -> list[tuple[str, str]]:
    """:func:`export_run` for each run, in order."""
    return [export_run(tracker, run) for run in runs]

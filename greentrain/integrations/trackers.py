"""Runs into MLflow and Weights & Biases: after the fact (:func:`export_runs`, ``greentrain
export --to mlflow|wandb``) or live as windows close (:mod:`greentrain.integrations.mirror`,
``greentrain run --mirror mlflow|wandb``). What is sent is
:mod:`greentrain.integrations.payload`'s.

* **MLflow** (:class:`MlflowTracker`): one MLflow run per greentrain run in an experiment
  (default ``$MLFLOW_EXPERIMENT_NAME``, else ``greentrain``) of a tracking URI (default:
  MLflow's own, ``$MLFLOW_TRACKING_URI``).
  A run already exported (tag ``greentrain.run_id``) is not exported twice. A tracking server
  that cannot be reached fails at once, before MLflow's minutes of retries.
* **W&B** (:class:`WandbTracker`): one W&B run per greentrain run in a project (default
  ``$WANDB_PROJECT``, else ``greentrain``); runs of a sweep share the group ``sweep``. Where
  it goes is W&B's own configuration (``wandb login``, ``WANDB_MODE=offline``, ``WANDB_DIR``,
  ``WANDB_ENTITY``).
  Each window's values are plotted against ``<window>/index``, the script's metrics against
  ``greentrain/step``.

Neither library sends its own usage or crash reports from greentrain
(``MLFLOW_DISABLE_TELEMETRY`` and ``WANDB_ERROR_REPORTING`` are set unless you set them): the
tracking server or W&B is the only place data goes. The libraries are imported on first use
(:func:`~greentrain.extras.require`): without them, a one-line
:class:`~greentrain.errors.ConfigError` names the extra to install. Anything the tracker
refuses (unreachable, unauthorised, a rejected value) is one line of
:class:`~greentrain.errors.StoreError`.

"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from greentrain.errors import ConfigError, StoreError
from greentrain.extras import require
from greentrain.integrations import payload
from greentrain.integrations.payload import Point

TARGETS: tuple[str, ...] = ("mlflow", "wandb")
DEFAULT_PROJECT = "greentrain"
CONNECT_TIMEOUT_S = 5.0
# a run stopped on purpose (a signal, its budget) is KILLED; anything else unfinished FAILED
MLFLOW_STATUS = {
    "finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "budget": "KILLED",
}  # fmt: skip
T = TypeVar("T")


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_reachable(uri: str, what: str) -> None:
    """StoreError unless an ``http(s)://`` ``uri``'s host accepts a connection (other schemes:
    nothing to check)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise ConfigError(f"{what} {uri!r}: {err}") from err
    if not parts.hostname:
        raise ConfigError(f"{what} {uri!r} has no host")
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or one_line(err)
        raise StoreError(f"cannot reach the {what} at {uri} ({reason})") from err


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MlflowTracker:
    """Writes greentrain runs as MLflow runs (see the module docstring)."""

    label = "MLflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow's own usage reports
        mlflow = require("mlflow", what="--to/--mirror mlflow")
        self._entities = require("mlflow.entities", what="--to/--mirror mlflow")
        self.uri = tracking_uri or mlflow.get_tracking_uri()
        check_reachable(self.uri, "MLflow tracking server")
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
        self.client = self._call(mlflow.MlflowClient, self.uri)
        found = self._call(self.client.get_experiment_by_name, self.experiment)
        self.experiment_id = (
            found.experiment_id
            if found is not None
            else self._call(self.client.create_experiment, self.experiment)
        )
        self.run_id: str | None = None

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow, SQLAlchemy, requests: one line
            raise StoreError(f"MLflow at {self.uri}: {one_line(err)}") from err

    def find(self, greentrain_id: str) -> str | None:
        """The MLflow run id of an earlier export of ``greentrain_id``, if any."""
        quoted = greentrain_id.replace("\\", "\\\\").replace("'", "\\'")
        found = self._call(
            self.client.search_runs,
            [self.experiment_id],
            filter_string=f"tags.`greentrain.run_id` = '{quoted}'",
            max_results=1,
        )
        return found[0].info.run_id if found else None

    def start(self, name: str, tags: Mapping[str, str], group: str | None = None) -> None:
        tags = dict(tags)
        if group:
            tags["greentrain.group"] = payload.tracker_text(group)
        run = self._call(
            self.client.create_run, self.experiment_id, run_name=payload.tracker_text(name),
            tags=tags,
        )  # fmt: skip
        self.run_id = run.info.run_id

    def params(self, params: Mapping[str, str]) -> None:
        items = [self._entities.Param(k, v) for k, v in params.items()]
        for chunk in _chunks(items, 100):
            self._call(self.client.log_batch, self.run_id, params=list(chunk))

    def tags(self, tags: Mapping[str, str]) -> None:
        items = [self._entities.RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(items, 100):
            self._call(self.client.log_batch, self.run_id, tags=list(chunk))

    def points(self, points: Sequence[Point]) -> None:
        now = int(time.time() * 1000)
        items = [
            self._entities.Metric(p.key, p.value, p.timestamp_ms or now, p.step) for p in points
        ]
        for chunk in _chunks(items, 1000):
            self._call(self.client.log_batch, self.run_id, metrics=list(chunk))

    def summary(self, values: Mapping[str, float]) -> None:
        self.points([Point(k, v, 0) for k, v in values.items()])

    def end(self, status: str, exit_code: int | None) -> None:
        self._call(self.client.set_terminated, self.run_id, MLFLOW_STATUS.get(status, "FAILED"))

    def where(self) -> str:
        return f"MLflow run {self.run_id} (experiment {self.experiment!r} at {self.uri})"


class WandbTracker:
    """Writes greentrain runs as W&B runs (see the module docstring)."""

    label = "W&B"

    def __init__(self, project: str | None = None) -> None:
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # W&B's own crash reports
        self._wandb = require("wandb", what="--to/--mirror wandb")
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.run: Any = None
        self._axes: set[str] = set()

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - wandb's errors: one line
            raise StoreError(f"W&B: {one_line(err)}") from err

    def find(self, greentrain_id: str) -> str | None:
        return None  # W&B is not searched (it may be offline): each export is a new W&B run

    def start(self, name: str, tags: Mapping[str, str], group: str | None = None) -> None:
        labels = ["greentrain"] + [f"{k}={v}"[:64] for k, v in tags.items()]
        settings = self._wandb.Settings(silent=True, console="off")
        self.run = self._call(
            self._wandb.init, project=self.project, name=payload.tracker_text(name), group=group,
            job_type="greentrain", tags=labels, config=dict(tags), settings=settings,
            reinit="create_new",
        )  # fmt: skip

    def params(self, params: Mapping[str, str]) -> None:
        self._call(self.run.config.update, dict(params), allow_val_change=True)

    def tags(self, tags: Mapping[str, str]) -> None:
        self.params(tags)

    def points(self, points: Sequence[Point]) -> None:
        batch: dict[str, float] = {}
        current: tuple[str, int, int | None] | None = None
        for p in points:
            if p.axis not in self._axes:
                self._call(self.run.define_metric, p.axis)
                self._axes.add(p.axis)
            if p.key not in self._axes:
                self._call(self.run.define_metric, p.key, step_metric=p.axis)
                self._axes.add(p.key)
            group = (p.axis, p.step, p.timestamp_ms)
            if group != current and batch:
                self._call(self.run.log, batch)
                batch = {}
            current = group
            batch[p.axis] = p.step
            batch[p.key] = p.value
        if batch:
            self._call(self.run.log, batch)

    def summary(self, values: Mapping[str, float]) -> None:
        self._call(self.run.summary.update, dict(values))

    def end(self, status: str, exit_code: int | None) -> None:
        code = 0 if status == "finished" else (exit_code if exit_code else 1)
        self._call(self.run.finish, exit_code=code)

    def where(self) -> str:
        run = self.run
        url = getattr(run, "url", None) if run is not None else None
        at = f", {url}" if url else ""
        return f"W&B run {getattr(run, 'id', '?')} (project {self.project!r}{at})"


def make_tracker(
    target: str, *, tracking_uri: str | None = None, project: str | None = None
) -> MlflowTracker | WandbTracker:
    """A tracker for ``target`` (``mlflow`` or ``wandb``); ConfigError for anything else."""
    if target == "mlflow":
        return MlflowTracker(tracking_uri, project)
    if target == "wandb":
        if tracking_uri:
            raise ConfigError(
                "--tracking-uri is MLflow's; W&B is configured by `wandb login` or WANDB_* "
                "variables (WANDB_MODE=offline, WANDB_BASE_URL)"
            )
        return WandbTracker(project)
    raise ConfigError(f"--to/--mirror {target!r}: use one of {', '.join(TARGETS)}")


def _group_of(run: Mapping[str, Any]) -> str | None:
    tags = run.get("tags") if isinstance(run.get("tags"), Mapping) else {}
    sweep = tags.get("sweep")
    return sweep if isinstance(sweep, str) and sweep else None


def export_run(tracker: MlflowTracker | WandbTracker, run: Mapping[str, Any]) -> tuple[str, str]:
    """Write one stored run to ``tracker``: ``("exported" | "skipped", where or why)``."""
    run_id = payload.tracker_text(run.get("id"))
    if run.get("status") == "running":
        return "skipped", f"run {run_id} is still running; export it when it has ended"
    earlier = tracker.find(run_id)
    if earlier is not None:
        return "skipped", f"run {run_id} is already in {tracker.label} as run {earlier}"
    tracker.start(str(run.get("name") or run_id), payload.tags(run), _group_of(run))
    tracker.params(payload.params(run))
    tracker.points(payload.record_points(run))
    tracker.summary(payload.totals(run))
    exit_code = run.get("exit_code")
    tracker.end(str(run.get("status")), exit_code if isinstance(exit_code, int) else None)
    return "exported", tracker.where()


def export_runs(
    runs: Iterable[Mapping[str, Any]], tracker: MlflowTracker | WandbTracker
) -> list[tuple[str, str]]:
    """:func:`export_run` for each run, in order."""
    return [export_run(tracker, run) for run in runs]

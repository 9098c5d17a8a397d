"""Runs into MLflow and Weights & Biases: after the fact (:func:`export_runs`, ``greentrain
export --to mlflow|wandb``) or live as windows close (:mod:`greentrain.integrations.mirror`,
``greentrain run --mirror mlflow|wandb``). What is sent is
:mod:`greentrain.integrations.payload`'s.

* **MLflow** (:class:`MlflowTracker`): one MLflow run per greentrain run in an experiment
  (default ``$MLFLOW_EXPERIMENT_NAME``, else ``greentrain``) of a tracking URI (default:
  MLflow's own, ``$MLFLOW_TRACKING_URI``). A run is found again by its tag
  ``greentrain.run_id`` in any experiment: the trainer's own run (tagged by the callbacks,
  ``greentrain.trainer_run``) or an earlier export. A tracking server that cannot be reached
  fails at once, before MLflow's minutes of retries.
* **W&B** (:class:`WandbTracker`): one W&B run per greentrain run in a project (default
  ``$WANDB_PROJECT``, else ``greentrain``), with an id of its own (``gt-<run id>``) or the
  trainer's run's, so writing it again resumes the same W&B run; runs of a sweep share the
  group ``sweep``. Where it goes is W&B's own configuration (``wandb login``,
  ``WANDB_MODE=offline``, ``WANDB_DIR``, ``WANDB_ENTITY``). Every value is plotted against
  ``greentrain/step``.

A run written whole is marked (tag, or W&B summary, ``greentrain.exported``) last, so a run
counts as exported only once everything reached the tracker (:mod:`greentrain.integrations.\
exporting`). What a tracker already has is not sent twice.

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
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
TAG_RUN_ID = "greentrain.run_id"
TAG_EXPORTED = "greentrain.exported"  # set last: everything reached the tracker
TAG_TRAINER = "greentrain.trainer_run"  # the trainer's own run, tagged by the callbacks


@dataclass(frozen=True)
class Found:
    """A tracker run of a greentrain run: its id, whether an export finished it, whether it
    is the trainer's own."""

    run_id: str
    exported: bool
    trainer: bool


def wandb_id(greentrain_id: str) -> str:
    """The W&B run id greentrain gives a run: ``gt-`` and the run id, W&B's characters only."""
    return "gt-" + re.sub(r"[^A-Za-z0-9_-]", "_", greentrain_id)[:60]


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
        self.owned = False
        self._have: dict[str, Any] = {}  # what an attached run already holds

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow, SQLAlchemy, requests: one line
            raise StoreError(f"MLflow at {self.uri}: {one_line(err)}") from err

    def find(self, greentrain_id: str) -> Found | None:
        """An MLflow run tagged ``greentrain.run_id`` = ``greentrain_id`` in any experiment:
        an earlier export (whole or not) or the trainer's own run."""
        quoted = greentrain_id.replace("\\", "\\\\").replace("'", "\\'")
        experiments = self._call(self.client.search_experiments)
        found = self._call(
            self.client.search_runs,
            [e.experiment_id for e in experiments],
            filter_string=f"tags.`{TAG_RUN_ID}` = '{quoted}'",
            max_results=10,
        )
        if not found:
            return None
        run = next((r for r in found if r.data.tags.get(TAG_EXPORTED)), found[0])
        return Found(run.info.run_id, bool(run.data.tags.get(TAG_EXPORTED)),
                     bool(run.data.tags.get(TAG_TRAINER)))  # fmt: skip

    def start(self, name: str, tags: Mapping[str, str], group: str | None = None) -> None:
        tags = dict(tags)
        if group:
            tags["greentrain.group"] = payload.tracker_text(group)
        run = self._call(
            self.client.create_run, self.experiment_id, run_name=payload.tracker_text(name),
            tags=tags,
        )  # fmt: skip
        self.run_id, self.owned, self._have = run.info.run_id, True, {}

    def attach(self, run_id: str, uri: str | None = None, owned: bool = False) -> None:
        """Write into an existing MLflow run (the trainer's, or an export to finish) at ``uri``
        (default: this tracker's); ``owned``: greentrain made it, so it may end it."""
        if uri and uri != self.uri:
            mlflow = require("mlflow", what="--to/--mirror mlflow")
            self.uri = uri
            self.client = self._call(mlflow.MlflowClient, uri)
        run = self._call(self.client.get_run, run_id)
        self.run_id, self.owned = run_id, owned
        self._have = {"params": dict(run.data.params), "metrics": set(run.data.metrics)}

    def _present(self, key: str) -> set[int]:
        """Steps ``key`` already has in the attached run."""
        if key not in self._have.get("metrics", ()):
            return set()
        history = self._call(self.client.get_metric_history, self.run_id, key)
        return {m.step for m in history}

    def params(self, params: Mapping[str, str]) -> None:
        have = self._have.get("params", {})  # a param cannot change in MLflow: the first stays
        items = [self._entities.Param(k, v) for k, v in params.items() if k not in have]
        for chunk in _chunks(items, 100):
            self._call(self.client.log_batch, self.run_id, params=list(chunk))

    def tags(self, tags: Mapping[str, str]) -> None:
        items = [self._entities.RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(items, 100):
            self._call(self.client.log_batch, self.run_id, tags=list(chunk))

    def points(self, points: Sequence[Point]) -> None:
        """Log ``points``, leaving out the (key, step) pairs the run already has."""
        now = int(time.time() * 1000)
        present = {key: self._present(key) for key in {p.key for p in points}}
        items = [
            self._entities.Metric(p.key, p.value, p.timestamp_ms or now, p.step)
            for p in points
            if p.step not in present[p.key]
        ]
        for chunk in _chunks(items, 1000):
            self._call(self.client.log_batch, self.run_id, metrics=list(chunk))

    def summary(self, values: Mapping[str, float]) -> None:
        self.points([Point(k, v, 0) for k, v in values.items()])

    def close(self, status: str, exit_code: int | None, whole: bool = True) -> None:
        """Finish a run greentrain made with ``status``'s MLflow status (the trainer's own run
        is the trainer's to end), then, ``whole``, mark it exported."""
        self.tags({"greentrain.status": payload.tracker_text(status)})
        if self.owned:
            self._call(self.client.set_terminated, self.run_id, MLFLOW_STATUS.get(status, "FAILED"))
        if whole:
            self.tags({TAG_EXPORTED: "true"})

    def abort(self) -> None:
        """After a failed write: a run greentrain made is FAILED, never left RUNNING."""
        if self.owned and self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")

    def where(self) -> str:
        return f"MLflow run {self.run_id} (at {self.uri})"


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

    def find(self, greentrain_id: str) -> Found | None:
        """Not searched (W&B may be offline): the run's id is known instead (:meth:`start`)."""
        return None

    def start(
        self, name: str, tags: Mapping[str, str], group: str | None = None, run: str | None = None
    ) -> None:
        """Open (or resume) the W&B run ``run`` (default ``gt-<greentrain run id>``)."""
        greentrain_id = tags.get(TAG_RUN_ID, name)
        labels = ["greentrain"] + [
            f"{k}={v}"[:64] for k, v in tags.items() if k != "greentrain.status"
        ]
        settings = self._wandb.Settings(silent=True, console="off")
        self.run = self._call(
            self._wandb.init, project=self.project, name=payload.tracker_text(name), group=group,
            job_type="greentrain", tags=labels, config=dict(tags), settings=settings,
            reinit="create_new", id=run or wandb_id(greentrain_id), resume="allow",
        )  # fmt: skip

    def attach(self, run_id: str, project: str | None = None, owned: bool = False) -> None:
        """Resume the trainer's W&B run ``run_id`` (in ``project``), keeping its name."""
        self.project = project or self.project
        settings = self._wandb.Settings(silent=True, console="off")
        self.run = self._call(self._wandb.init, project=self.project, id=run_id,
                              resume="allow", settings=settings, reinit="create_new")  # fmt: skip

    def already_exported(self) -> bool:
        """A resumed run (online) that an earlier export finished."""
        summary = getattr(self.run, "summary", None)
        return bool(getattr(self.run, "resumed", False) and summary is not None
                    and summary.get(TAG_EXPORTED))  # fmt: skip

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

    def summary(self, values: Mapping[str, Any]) -> None:
        self._call(self.run.summary.update, dict(values))

    def close(self, status: str, exit_code: int | None, whole: bool = True) -> None:
        """The run's status into its config and summary (``whole``: and the exported mark),
        then finish the W&B run with an exit code that says how it ended."""
        self.params({"greentrain.status": payload.tracker_text(status)})
        self.summary({"greentrain.status": status, **({TAG_EXPORTED: True} if whole else {})})
        code = 0 if status == "finished" else (exit_code if exit_code else 1)
        self._call(self.run.finish, exit_code=code)

    def abort(self) -> None:
        """After a failed write: the W&B run is finished as failed (exit code 1)."""
        if self.run is not None:
            self.run.finish(exit_code=1)

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

"""A run mirrored to MLflow or W&B as it goes: ``greentrain run --mirror mlflow|wandb``.

A :class:`Mirror` is a listener (:mod:`greentrain.run.listeners`): it runs in the run's own
listener thread, opens its tracker run (:mod:`greentrain.integrations.trackers`) at the first
event, and writes the config, each window's energy and metrics, and at the end the totals and
status (tag and W&B config/summary ``greentrain.status``) and the mark ``greentrain.exported``
(a later ``greentrain export --to`` finds it whole). A failure stops only the mirror (reported
once on stderr), never the job. ``live=False`` keeps the events until the run's end instead.

**The trainer's own run.** When the job announces that the trainer logs to a run of the same
tracker (the callbacks do, :func:`greentrain.client.tracker_run`, before their first config),
the mirror attaches to that run instead of making its own: the callbacks log each window's
energy there and the trainer its metrics, so the mirror adds the params (carbon factors,
provenance, meters), the totals and the tags, and leaves the trainer's run its status. An
announcement after the mirror opened its own run is recorded (an event of the run) and the
mirror keeps its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from greentrain.integrations import names, payload
from greentrain.integrations.trackers import MlflowTracker, WandbTracker
from greentrain.report.runs import parse_time

logger = logging.getLogger(__name__)


class Mirror:
    """A listener that writes a run to a tracker as it goes (``greentrain run --mirror``).

    Args:
        tracker: where to (:func:`make_tracker`; made before the job starts, so a missing
            library or an unreachable server stops the command before it runs).
        name: the tracker run's name.
        tags: the greentrain run's tags.
        intensity_g_per_kwh, pue: the run's carbon factors, for each window's CO2e.
        live: write each event when it arrives; False keeps them until the run ends and writes
            them then. ``greentrain run --mirror wandb`` uses False: W&B's service process runs
            in a session of its own, and ``greentrain run`` stops every process outside its
            own group that is still there when the job ends, so a W&B run opened during the
            job would lose its service before the run's end is written.
    """

    def __init__(
        self,
        tracker: MlflowTracker | WandbTracker,
        *,
        name: str,
        tags: Mapping[str, str] | None = None,
        intensity_g_per_kwh: float | None = None,
        pue: float = 1.0,
        live: bool = True,
    ) -> None:
        self.tracker = tracker
        self.name = name
        self.run_tags = dict(tags or {})
        self.intensity_g_per_kwh = intensity_g_per_kwh
        self.pue = pue
        self.live = live
        self.started = False
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._steps = payload.StepCounter()
        self._metric_steps = payload.MetricSteps()
        self._seen: set = set()
        self._params: dict[str, str] = {}
        self.attached: Mapping[str, Any] | None = None  # the trainer's run, when written into

    def _do(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` now, or at the run's end when not live (in order)."""
        if self.live:
            fn(*args)
        else:
            self._pending.append((fn, args))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for fn, args in pending:
            fn(*args)

    def _start(self, run_id: str) -> None:
        if self.started:
            return
        self.started = True
        record = {"id": run_id, "name": self.name, "tags": self.run_tags, "status": "running"}
        if self.attached is not None:
            where = self.attached.get("uri") or self.attached.get("project")
            self._do(self.tracker.attach, str(self.attached.get("run")), where)
            tags = {k: v for k, v in payload.tags(record).items() if k != "greentrain.status"}
            self._do(self.tracker.tags, tags)
            return
        group = self.run_tags.get("sweep") or None
        self._do(self.tracker.start, self.name, payload.tags(record), group)

    def on_tracker_run(self, event: Mapping[str, Any]) -> None:
        """The trainer logs to a tracker run of its own: attach to it if it is this tracker's
        and the mirror has not opened a run yet."""
        kind = "mlflow" if isinstance(self.tracker, MlflowTracker) else "wandb"
        if event.get("tracker") == kind and not self.started and event.get("run"):
            self.attached = dict(event)
            self._start(str(event.get("run_id")))

    def _new_params(self, params: Mapping[str, str]) -> None:
        """Params not sent yet (a value cannot change in MLflow: the first one stays)."""
        fresh = {k: v for k, v in params.items() if k not in self._params}
        if fresh:
            self._do(self.tracker.params, fresh)
            self._params.update(fresh)

    def on_config(self, event: Mapping[str, Any]) -> None:
        self._start(str(event.get("run_id")))
        params = event.get("params") if isinstance(event.get("params"), Mapping) else {}
        self._new_params(payload.config_params(params))

    def on_window(self, event: Mapping[str, Any]) -> None:
        self._start(str(event.get("run_id")))
        if self.attached is not None:
            return  # the callbacks log each window's energy to the trainer's run
        name = payload.tracker_text(event.get("name"))
        ended = event.get("ended_unix")
        ended = ended if isinstance(ended, (int, float)) else None
        number = self._steps.next(name)
        logged = [e for e in event.get("metrics") or [] if isinstance(e, Mapping)]
        step = names.last_step(e for e in logged if e.get("window") == event.get("name"))
        points = payload.window_points(
            name, number if step is None else step, event.get("energy") or {},
            event.get("duration_s"), ended, self.intensity_g_per_kwh, self.pue,
        )  # fmt: skip
        ts = None if ended is None else int(ended * 1000)
        for entry in event.get("metrics") or []:
            if isinstance(entry, Mapping):
                points += self._metric_steps.points(entry, ts, self._seen)
        if points:
            self._do(self.tracker.points, points)

    def on_end(self, event: Mapping[str, Any]) -> None:
        self._start(str(event.get("run_id")))
        self.live = True
        self._flush()
        record = event.get("record") if isinstance(event.get("record"), Mapping) else {}
        status = str(event.get("status"))
        if record:
            self._new_params(payload.params(record))
        if record and self.attached is None:
            started = parse_time(record.get("started_at"))
            rest = []
            for entry in record.get("metrics") or []:
                if isinstance(entry, Mapping):
                    _, time_s, _ = payload.entry_metrics(entry)
                    ts = None
                    if started is not None and time_s is not None:
                        ts = int((started.timestamp() + time_s) * 1000)
                    rest += self._metric_steps.points(entry, ts, self._seen)
            if rest:
                self.tracker.points(rest)
        if record:
            self.tracker.summary(payload.totals(record))
        exit_code = event.get("exit_code")
        self.tracker.close(status, exit_code if isinstance(exit_code, int) else None)
        into = "the trainer's " if self.attached is not None else ""
        logger.info("greentrain: mirrored to %s%s", into, self.tracker.where())

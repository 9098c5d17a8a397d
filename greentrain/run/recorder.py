"""One run's record, written as the run goes: creation, windows, metrics, samples, finalize.

The :class:`Recorder` is the client's :class:`~greentrain.protocol.Sink` for the run: client
calls from the job (through the channel, or in-process under ``track()``) land here. Energy is
read from the :class:`~greentrain.run.meterset.MeterSet` at every window boundary, every
``sample_s`` seconds (the run's timeline, which also keeps a record's energy current should the
wrapper die) and when the job ends; the best figure per domain is decided by
:func:`greentrain.record.ranking.select_best`, the function readers use too. Every write is a
typed :mod:`greentrain.store.ops` value handed to :class:`~greentrain.run.applier.RunWrites`
(journal first, then the store) the moment it is made -- an event, a meter's changed status,
a device taken over; logged metrics at the latest :data:`METRIC_FLUSH_S` seconds after they
arrive -- so a busy store never delays the job and a SIGKILLed wrapper's record keeps them.
Windows (their boundaries, energy, answers, and clipping at the run's end) are
:class:`~greentrain.run.window_book.WindowBook`'s part of the recorder.

Durations (the run's, a window's, a baseline's) come from the :class:`Clock`'s monotonic
clock; its wall clock only labels instants (``started_at``, ``ended_at``, events), so a clock
step mid-run changes no duration.

A run of a group takes part in its group's device election on this host
(:mod:`greentrain.run.election`): it meters only the devices it won, and says which it left.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrain.envinfo import git_info, machine_info
from greentrain.meters.poller import Poller
from greentrain.meters.proctree import JobCPU
from greentrain.record.evidence import EVIDENCE_EVENT
from greentrain.record.jsonable import to_jsonable
from greentrain.record.ranking import select_best, total_j
from greentrain.record.readings import (
    Readings,
    diff_readings,
    extrapolate_head,
    readings_rows,
    sample_readings,
)
from greentrain.record.vocabulary import RUN_SCOPE
from greentrain.run.applier import RunWrites
from greentrain.run.election import Election, Retrier
from greentrain.run.group import GroupInfo
from greentrain.run.identity import default_name
from greentrain.run.listeners import Fanout
from greentrain.run.meterset import MeterSet
from greentrain.run.ranks import WorkerRanks
from greentrain.run.window_book import CLIPPED_EVENT, WINDOW_SYNC_S, WindowBook
from greentrain.store import ops, redact_all
from greentrain.store.liveness import process_started, start_ticks

METRIC_FLUSH_N = 64  # metrics buffered before they are journalled ...
METRIC_FLUSH_S = 1.0  # ... or at most this many seconds after they arrived
SAMPLE_S = 10.0  # seconds between samples of the run's timeline (0: none)
LISTENER_DRAIN_S = 5.0  # at most this long the end waits for listeners to take what was emitted


@dataclass(frozen=True)
class Clock:
    """Where a run reads the time: ``wall`` (unix seconds, labels only) and ``mono``
    (monotonic seconds, every duration). Injectable, so a test can step the wall clock."""

    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic


class Recorder(WindowBook):
    """Writes one run's record; implements :class:`greentrain.protocol.Sink`."""

    def __init__(
        self,
        writes: RunWrites,
        run_id: str,
        meters: MeterSet,
        *,
        sample_s: float = SAMPLE_S,
        listeners: Sequence[Any] = (),
        group: GroupInfo | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.group = group
        self.election = Election(group.id, run_id) if group is not None else None
        self.ranks = WorkerRanks() if group is not None else None
        self._retrier: Retrier | None = None
        if self.election is not None:
            meters.elect(self.election)
        self.run_id = run_id
        self.meters = meters
        self.sample_s = sample_s
        self.writes = writes
        self.fanout = Fanout(listeners)
        self._window_metrics: dict[str, list[dict[str, Any]]] = {}
        self.t0 = self.clock.wall()  # unix seconds: the label of the run's start
        self.m0 = self.clock.mono()  # the same instant on the monotonic clock
        self.offset: Readings | None = None
        self.cpu: JobCPU | None = None
        self.ended: float | None = None  # unix seconds (label)
        self.ended_mono: float | None = None
        self.final: Readings | None = None
        self._lock = threading.RLock()
        self._windows: dict[str, tuple[int, str, float, float, Readings, dict]] = {}  # t, mono
        self._next_window = 0
        self._metrics: list[dict[str, Any]] = []
        self._sampler: Poller | None = None
        self._flusher = Poller(self.flush_metrics, METRIC_FLUSH_S, "greentrain-metrics")
        self._meters_stored: list[dict[str, Any]] | None = None  # the statuses last journalled
        self._seq = 0
        self._late: dict[str, float] = {}  # slow meters that joined after launch -> mono when
        self.finalized = False
        self.clipped = 0  # window boundaries that arrived after the end instant
        self._synced_mono = -WINDOW_SYNC_S  # when a window end was last fsynced
        self.carbon: dict[str, Any] = {}  # the run's carbon factors, for window answers
        self.label0 = self.t0  # unix seconds the record says the run started at (create())
        self.command: list[str] = []  # the command as recorded (create())

    def create(
        self,
        command: Sequence[str],
        name: str | None,
        tags: Mapping[str, str] | None,
        carbon: dict[str, Any] | None,
        parent_id: str | None = None,
        first_beat_s: float = 0.0,
    ) -> None:
        """Queue the ``running`` record of ``command`` (first write of the run; a busy store
        does not delay the job's start). A store URL's password in the command or a tag is
        hidden. ``parent_id``: the run this one is nested in; ``first_beat_s``: seconds before
        the first sample (a baseline), added to the first heartbeat."""
        self.carbon = dict(carbon or {})
        self.label0 = self.clock.wall()  # the record's started_at: metrics' time_s count from it
        self.command = redact_all([str(w) for w in command])
        cwd, pid = os.getcwd(), os.getpid()
        self.writes.submit(ops.CreateRun(
            self.run_id, name=redact_all(name or default_name(command)),
            command=list(self.command),
            cwd=cwd, tags=redact_all({str(k): str(v) for k, v in (tags or {}).items()}),
            git=git_info(cwd), env=machine_info(), carbon=carbon, started_unix=self.label0,
            host=socket.gethostname(), pid=pid, pid_started=process_started(pid),
            pid_ticks=start_ticks(pid), group_id=self.group.id if self.group else None,
            group_rank=self.group.rank if self.group else None, parent_id=parent_id,
            launch_id=self.group.launch if self.group else None,
            group_size=self.group.size if self.group else None,
            heartbeat_s=self.sample_s if self.sample_s > 0 else None, first_beat_s=first_beat_s,
        ), sync=True)  # fmt: skip

    def event_now(self, event: str, **detail: Any) -> None:
        """Note something that happened to the run (a signal forwarded, a forecast, a budget)
        in its ``events``: journalled now, so it is kept should the wrapper die."""
        entry = redact_all({"t": self.clock.wall(), "event": event, **detail})
        self.writes.submit(ops.AddEvents(self.run_id, events=[entry]))

    def store_meters(self) -> None:
        """Journal the meters' statuses if they changed since last time (a slow meter became
        ready, a meter failed mid-run): the record says so at once, not at the end."""
        statuses = self.meters.statuses()
        with self._lock:
            if statuses == self._meters_stored:
                return
            self._meters_stored = statuses
        self.writes.submit(ops.SetMeters(self.run_id, meters=statuses))

    def spent_j(self) -> float | None:
        """The run's energy so far, joules: the best figure per domain, summed (None while no
        meter measures anything)."""
        readings = self.meters.read()
        totals = diff_readings(readings, self.offset) if self.offset else readings
        return total_j(select_best(totals, self.meters.statuses()))

    # -- client sink ----------------------------------------------------------------------------
    def on_config(self, params: dict[str, Any]) -> None:
        params = redact_all(params)  # a store URL's password, say, is never recorded
        self.writes.submit(ops.UpdateConfig(self.run_id, params=params))
        self.fanout.emit("on_config", {"run_id": self.run_id, "params": params})

    def on_log(
        self, step: int | None, metrics: dict[str, Any], window: str | None, t: float
    ) -> None:
        entry = {"step": step, "window": window, "time_s": max(0.0, t - self.label0),
                 "metrics": metrics}  # fmt: skip
        with self._lock:
            self._metrics.append(entry)
            for logged in self._window_metrics.values():  # for listeners of open windows
                logged.append(entry)
            if len(self._metrics) >= METRIC_FLUSH_N:
                self.flush_metrics()

    def flush_metrics(self) -> None:
        """Journal the metrics logged since the last flush (under the lock: in their order)."""
        with self._lock:
            if self._metrics:
                self.writes.submit(ops.AddMetrics(self.run_id, entries=self._metrics))
                self._metrics = []

    def on_tracker_run(self, info: dict[str, Any]) -> None:
        """The trainer's own tracker run (MLflow, W&B): an event of the record, and news for
        the listeners (a mirror attaches to it)."""
        info = redact_all({str(k): v for k, v in info.items()})
        self.event_now("trainer tracker run", **info)
        self.fanout.emit("on_tracker_run", {"run_id": self.run_id, **info})

    def on_evidence(self, info: dict[str, Any]) -> None:
        """Another meter's figures for the run (:mod:`greentrain.record.evidence`): an event,
        read back as evidence beside the run's own figures, never added to them."""
        self.event_now(EVIDENCE_EVENT, **{str(k): v for k, v in info.items()})

    # -- life cycle -----------------------------------------------------------------------------
    def baseline(self, seconds: float, should_stop: threading.Event | None = None) -> None:
        """Measure idle power for ``seconds``; job energy is counted from the end of it."""
        start = self.meters.read()
        t_start = self.clock.mono()
        if should_stop is not None:
            should_stop.wait(seconds)
        else:
            time.sleep(seconds)
        end = self.meters.read()
        elapsed = self.clock.mono() - t_start
        best = select_best(diff_readings(end, start), self.meters.statuses())
        power = {
            d: v["energy_j"] / elapsed
            for d, v in best.items()
            if v.get("energy_j") is not None and elapsed > 0
        }
        baseline = {"duration_s": elapsed, "power_w": power,
                    "sources": {d: best[d]["source"] for d in power}}  # fmt: skip
        self.writes.submit(ops.SetRunFields(self.run_id, fields={"baseline": baseline}))
        self.offset = end
        self.t0, self.m0 = self.clock.wall(), self.clock.mono()

    def align_start(self, cpu: JobCPU | None = None) -> None:
        """Start the run's clock and every meter's total now (unless a baseline already did),
        and its timeline: samples every ``sample_s`` seconds of ``cpu`` (the job's CPU time).

        Meters start one after another, taking milliseconds (NVML) to seconds (CodeCarbon), so
        their own windows open at different instants. Reading all of them at the moment the
        job starts and counting from there gives every meter the same window: the job's.
        """
        if self.offset is None:
            self.offset = self.meters.read()
        self.t0, self.m0 = self.clock.wall(), self.clock.mono()
        self.cpu = cpu
        self.sample(self.t0, self.offset)
        if self.election is not None:
            summary = self.election.summary()
            self.writes.submit(ops.SetRunFields(self.run_id, fields={"election": summary}))
            self._retrier = Retrier(self.election, self._taken_over)
        if self.sample_s > 0:
            self._sampler = Poller(self.sample, self.sample_s, "greentrain-samples")
            self._sampler.start()
        self._flusher.start()

    def on_meter_ready(self, name: str, meter: Any) -> None:
        """A slow meter became ready after the job started: count it from now (its head is
        extrapolated at the end, and labelled so)."""
        reading = self.meters.read(only=name).get(name, [])
        with self._lock:
            if self.offset is None or name in self.offset:
                return  # before launch: the launch reading covers it
            self.offset[name] = reading
            self._late[name] = self.clock.mono()
        self.store_meters()

    def _taken_over(self, keys: list[str]) -> None:
        """Devices another wrapper of the group metered until now: count them from here."""
        self.meters.read()  # the device's counter from this instant on
        summary = self.election.summary() if self.election else {}
        self.writes.submit(ops.SetRunFields(self.run_id, fields={"election": summary}))
        taken = summary.get("taken_over") or {}
        for key in keys:
            self.event_now("device taken over", device=key,
                           **{"from": taken.get(key, {}).get("from")})  # fmt: skip

    def sample(self, t: float | None = None, readings: Readings | None = None) -> None:
        """Journal one timeline sample and the run's totals so far: at unix ``t`` (default:
        now), of ``readings`` (default: every meter read now)."""
        t = self.clock.wall() if t is None else t
        readings = self.meters.read() if readings is None else readings
        totals = diff_readings(readings, self.offset) if self.offset else readings
        with self._lock:
            seq, self._seq = self._seq, self._seq + 1
        cpu_s = self.cpu.seconds() if self.cpu is not None else (0.0 if seq == 0 else None)
        pids = self.cpu.pids() if self.cpu is not None else None
        on_device = self.meters.job_devices(pids) if pids is not None else None
        if self.ranks is not None and pids:
            found = self.ranks.update(pids)  # the ranks the workers report (issue 24)
            if found:
                self.writes.submit(ops.SetRunFields(self.run_id, fields=found))
        if seq:  # the whole-run rows so far: a dead wrapper's record keeps this energy
            self.writes.submit(ops.AddEnergy(self.run_id, window_idx=RUN_SCOPE,
                                             rows=readings_rows(totals)))  # fmt: skip
        self.writes.submit(ops.AddSample(self.run_id, seq=seq, t=t, cpu_s=cpu_s,
                                         readings=sample_readings(totals, on_device)))  # fmt: skip
        self.fanout.emit("on_sample", {
            "run_id": self.run_id, "t": t, "readings": totals, "meters": self.meters.statuses(),
            "group": self.group.id if self.group else None,
            "node": self.group.rank if self.group else None,
        })  # fmt: skip
        self.store_meters()

    def stop(self) -> None:
        """The job ended: take the end instant and the final readings now, before any write."""
        if self.final is not None:
            return
        self.ended, self.ended_mono = self.clock.wall(), self.clock.mono()
        if self._sampler is not None:
            self._sampler.stop()
        self._flusher.stop()
        if self._retrier is not None:
            self._retrier.stop()
        self.final = self.meters.stop()
        if self.election is not None:
            self.election.close()  # after the final readings: a sibling may take over now

    def finalize(self, status: str, exit_code: int | None) -> None:
        """Queue the record's end: energy (whole run + open windows), best figures, meters
        (with the last sample), status and the duration (monotonic seconds). The caller waits
        for the writes to land (:meth:`RunWrites.close`) and then calls :meth:`ended_with`."""
        if self.finalized:
            return
        self.finalized = True
        self.stop()
        ended, final, mono = self.ended, self.final, self.ended_mono
        if self.clipped:
            self.event_now(CLIPPED_EVENT, count=self.clipped,
                           detail="received after the wrapper's drain deadline")  # fmt: skip
        for key in list(self._windows):
            self.on_window_end(key, ended, final, mono)
        self.flush_metrics()
        self.fanout.drain(LISTENER_DRAIN_S)  # what listeners add (forecasts) lands before the end
        totals = diff_readings(final, self.offset) if self.offset else final
        for name, ready in self._late.items():
            if name in totals:
                totals[name] = extrapolate_head(totals[name], ready - self.m0, mono - ready)
        self.sample(ended, final)
        self.writes.submit(ops.AddEnergy(self.run_id, window_idx=RUN_SCOPE,
                                         rows=readings_rows(totals)))  # fmt: skip
        fields: dict[str, Any] = {"best": to_jsonable(select_best(totals, self.meters.statuses()))}
        if self.election is not None:
            fields["election"] = summary = self.election.summary()
            if summary["elsewhere"]:
                self.event_now("devices metered by another run of the group",
                               devices=dict(summary["elsewhere"]))  # fmt: skip
        self.writes.submit(ops.SetRunFields(self.run_id, fields=fields))
        self.writes.submit(ops.FinishRun(
            self.run_id, status=status, exit_code=exit_code, ended_unix=ended,
            duration_s=max(0.0, mono - self.m0),
        ), sync=True)  # fmt: skip

    def ended_with(self, status: str, exit_code: int | None, record: dict[str, Any]) -> None:
        """Tell the listeners the run is final (``record``: as stored, {} if not readable)."""
        self.fanout.emit("on_end", {"run_id": self.run_id, "status": status,
                                    "exit_code": exit_code, "record": record})  # fmt: skip
        self.fanout.close()

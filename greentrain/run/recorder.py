"""One run's record, written as the run goes: creation, windows, metrics, baseline, finalize.

The :class:`Recorder` is the client's :class:`~greentrain.protocol.Sink` for the run: client
calls from the job (through the channel, or in-process under ``track()``) land here. Energy is
read from the :class:`~greentrain.run.meterset.MeterSet` at every window boundary and at the end;
the best figure per domain is decided by :func:`greentrain.record.ranking.select_best`, the same
function readers use for a record without one.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from greentrain.envinfo import git_info, machine_info
from greentrain.record.jsonable import to_jsonable
from greentrain.record.ranking import select_best
from greentrain.record.readings import Readings, diff_readings, readings_rows
from greentrain.record.vocabulary import RUN_SCOPE
from greentrain.run.meterset import MeterSet
from greentrain.store import Store

METRIC_FLUSH_N = 64  # metrics buffered before a store write ...
METRIC_FLUSH_S = 1.0  # ... or seconds since the last one


def new_run_id() -> str:
    """A 12-hex-digit random id (48 bits; prefixes identify runs on the command line)."""
    return uuid.uuid4().hex[:12]


def default_name(command: Sequence[str]) -> str:
    """A run's name from its command: the script's stem for ``python x.py``, else the program."""
    if not command:
        return "run"
    exe = Path(command[0]).name
    if exe.startswith("python"):
        for arg in command[1:]:
            if arg == "-c":
                return "python-c"
            if arg == "-m":
                continue
            if not arg.startswith("-"):
                return Path(arg).stem
    return exe


def open_store(store: Store | str | os.PathLike[str] | None) -> tuple[Store, bool]:
    """(the store, whether the caller owns it and must close it)."""
    if isinstance(store, Store):
        return store, False
    return Store(store), True


def create_record(
    store: Store,
    command: Sequence[str],
    name: str | None,
    tags: Mapping[str, str] | None,
    carbon: dict[str, Any] | None,
) -> str:
    """Insert a ``running`` record for ``command``; returns its new id."""
    run_id = new_run_id()
    cwd = os.getcwd()
    store.create_run(
        run_id,
        name=name or default_name(command),
        command=list(command),
        cwd=cwd,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        git=git_info(cwd),
        env=machine_info(),
        carbon=carbon,
    )
    return run_id


class Recorder:
    """Writes one run's record; implements :class:`greentrain.protocol.Sink`."""

    def __init__(self, store: Store, run_id: str, meters: MeterSet) -> None:
        self.store = store
        self.run_id = run_id
        self.meters = meters
        self.t0 = time.time()
        self.offset: Readings | None = None
        self._lock = threading.RLock()
        self._windows: dict[str, tuple[int, str, float, Readings]] = {}
        self._next_window = 0
        self._metrics: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self.finalized = False

    # -- client sink ----------------------------------------------------------------------------
    def on_config(self, params: dict[str, Any]) -> None:
        self.store.update_config(self.run_id, params)

    def on_log(
        self, step: int | None, metrics: dict[str, Any], window: str | None, t: float
    ) -> None:
        with self._lock:
            self._metrics.append(
                {
                    "step": step,
                    "window": window,
                    "time_s": max(0.0, t - self.t0),
                    "metrics": metrics,
                }
            )
            if (
                len(self._metrics) >= METRIC_FLUSH_N
                or time.monotonic() - self._last_flush > METRIC_FLUSH_S
            ):
                self.flush_metrics()

    def flush_metrics(self) -> None:
        with self._lock:
            pending, self._metrics = self._metrics, []
            self._last_flush = time.monotonic()
        if pending:
            self.store.add_metrics(self.run_id, pending)

    def on_window_begin(
        self, key: str, name: str, info: dict[str, Any], t: float, readings: Readings | None = None
    ) -> None:
        if readings is None:
            readings = self.meters.read()
        with self._lock:
            idx = self._next_window
            self._next_window += 1
            self._windows[key] = (idx, name, t, readings)
        self.flush_metrics()
        self.store.begin_window(self.run_id, idx, name, t, info)

    def on_window_end(self, key: str, t: float, readings: Readings | None = None) -> None:
        if readings is None:
            readings = self.meters.read()
        with self._lock:
            opened = self._windows.pop(key, None)
        if opened is None:
            return
        idx, _name, t_begin, begin = opened
        energy = diff_readings(readings, begin)
        self.flush_metrics()
        self.store.end_window(self.run_id, idx, t, max(0.0, t - t_begin), readings_rows(energy))

    # -- life cycle -----------------------------------------------------------------------------
    def baseline(self, seconds: float, should_stop: threading.Event | None = None) -> None:
        """Measure idle power for ``seconds``; job energy is counted from the end of it."""
        start = self.meters.read()
        t_start = time.monotonic()
        if should_stop is not None:
            should_stop.wait(seconds)
        else:
            time.sleep(seconds)
        end = self.meters.read()
        elapsed = time.monotonic() - t_start
        best = select_best(diff_readings(end, start), self.meters.statuses())
        power = {
            d: v["energy_j"] / elapsed
            for d, v in best.items()
            if v.get("energy_j") is not None and elapsed > 0
        }
        self.store.set_run_fields(
            self.run_id,
            baseline={
                "duration_s": elapsed,
                "power_w": power,
                "sources": {d: best[d]["source"] for d in power},
            },
        )
        self.offset = end
        self.t0 = time.time()

    def align_start(self) -> None:
        """Start the run's clock and every meter's total now (unless a baseline already did).

        Meters start one after another, taking milliseconds (NVML) to seconds (CodeCarbon), so
        their own windows open at different instants. Reading all of them at the moment the
        job starts and counting from there gives every meter the same window: the job's.
        """
        if self.offset is None:
            self.offset = self.meters.read()
        self.t0 = time.time()

    def finalize(self, status: str, exit_code: int | None) -> dict[str, Any]:
        """Stop meters, write energy (whole run + open windows), best figures, status."""
        if self.finalized:
            return {}
        self.finalized = True
        ended = time.time()
        final = self.meters.stop()
        for key in list(self._windows):
            self.on_window_end(key, ended, final)
        self.flush_metrics()
        totals = diff_readings(final, self.offset) if self.offset else final
        self.store.add_energy(self.run_id, RUN_SCOPE, readings_rows(totals))
        best = select_best(totals, self.meters.statuses())
        self.store.set_run_fields(self.run_id, best=to_jsonable(best))
        self.store.set_meters(self.run_id, self.meters.statuses())
        self.store.finish_run(
            self.run_id,
            status=status,
            exit_code=exit_code,
            ended_unix=ended,
            duration_s=max(0.0, ended - self.t0),
        )
        return self.store.get_run(self.run_id)

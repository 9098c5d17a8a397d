"""A run's windows: each boundary's readings, the window's energy and its answer to the client.

:class:`WindowBook` is the window part of :class:`~greentrain.run.recorder.Recorder` (it uses
the recorder's meters, writes, clock, lock and listeners). A window's energy is the difference
of the meters' readings at its two boundaries, joules; its duration is monotonic, seconds; its
unix instants are labels.

A window boundary that arrives once the run's end instant is taken (a burst the wrapper was
still reading when its drain's deadline passed, :mod:`greentrain.run.channel`) is clipped to
it -- the end's readings and instant -- never dropped, and counted in an event
(:data:`CLIPPED_EVENT`); a window opened after the end has no energy of its own to show, and
its info says so (:data:`CLIPPED_INFO`). Window ends are ``fsync``-ed at most every
:data:`WINDOW_SYNC_S` seconds (a burst of windows would otherwise cost one disk flush each); an
end in between reaches the disk with the next flush (a later window's end, the run's end), and
a killed wrapper loses none of them (they are written at once; only a machine crash could).
"""

from __future__ import annotations

import threading
from typing import Any

from greentrain.record.jsonable import to_jsonable
from greentrain.record.ranking import select_best
from greentrain.record.readings import Readings, diff_readings, readings_rows
from greentrain.store import ops

WINDOW_SYNC_S = 0.05  # window ends are fsynced at most this often, seconds
CLIPPED_EVENT = "window boundaries clipped to the run's end"
CLIPPED_INFO = "opened_after_run_end"  # in a window's info: its energy could not be measured


class WindowBook:
    """Opens and closes a run's windows (mixed into the recorder, whose state it uses)."""

    run_id: str
    meters: Any
    writes: Any
    clock: Any
    fanout: Any
    carbon: dict[str, Any]
    offset: Readings | None
    final: Readings | None
    ended: float | None
    ended_mono: float | None
    clipped: int
    _lock: threading.RLock
    _windows: dict[str, tuple[int, str, float, float, Readings, dict]]
    _window_metrics: dict[str, list[dict[str, Any]]]
    _next_window: int
    _synced_mono: float

    def on_window_begin(
        self, key: str, name: str, info: dict[str, Any], t: float, readings: Readings | None = None
    ) -> None:
        if readings is None and self.final is not None:  # wholly after the run's end: no energy
            info = {**info, CLIPPED_INFO: True}
        readings, t, mono = self._boundary(readings, t, None)
        with self._lock:
            idx = self._next_window
            self._next_window += 1
            self._windows[key] = (idx, name, t, mono, readings, info)
            self._window_metrics[key] = []
        self.flush_metrics()
        self.writes.submit(ops.BeginWindow(self.run_id, idx=idx, name=name, started_unix=t,
                                           info=info))  # fmt: skip

    def on_window_end(
        self, key: str, t: float, readings: Readings | None = None, mono: float | None = None
    ) -> dict[str, Any] | None:
        """Close window ``key`` at unix ``t`` (a label); its duration is monotonic: from its
        opening to ``mono`` (default: now). Returns the answer for the client that closed it
        (:data:`greentrain.protocol.WINDOW_ANSWER`'s fields), None for an unknown key."""
        readings, t, mono = self._boundary(readings, t, mono)
        with self._lock:
            opened = self._windows.pop(key, None)
            logged = self._window_metrics.pop(key, [])
        if opened is None:
            return None
        idx, name, t_begin, mono_begin, begin, info = opened
        duration_s = max(0.0, mono - mono_begin)
        energy = diff_readings(readings, begin)
        run_energy = diff_readings(readings, self.offset) if self.offset else None
        self.flush_metrics()
        self.writes.submit(ops.EndWindow(
            self.run_id, idx=idx, ended_unix=t, duration_s=duration_s,
            energy_rows=readings_rows(energy),
        ), sync=self._sync_due(mono))  # fmt: skip
        best = select_best(energy, self.meters.statuses())
        self.fanout.emit("on_window", {
            "run_id": self.run_id, "index": idx, "name": name, "info": info,
            "started_unix": t_begin, "ended_unix": t, "duration_s": duration_s,
            "energy": best, "metrics": logged,
            "run_energy": select_best(run_energy, self.meters.statuses()) if run_energy else None,
        })  # fmt: skip
        carbon = {k: self.carbon.get(k) for k in ("intensity_g_per_kwh", "pue")}
        return to_jsonable({"name": name, "index": info.get("index"), "duration_s": duration_s,
                            "energy": best, "carbon": carbon})  # fmt: skip

    def _boundary(
        self, readings: Readings | None, t: float, mono: float | None
    ) -> tuple[Readings, float, float]:
        """A boundary's readings, unix label and monotonic instant: the meters now, or once
        the run's end is taken, clipped to it (and counted)."""
        if readings is None and self.final is not None:
            self.clipped += 1
            return self.final, min(t, self.ended or t), self.ended_mono or self.clock.mono()
        readings = self.meters.read() if readings is None else readings
        return readings, t, self.clock.mono() if mono is None else mono

    def _sync_due(self, mono: float) -> bool:
        """Whether this window end is fsynced (:data:`WINDOW_SYNC_S`)."""
        with self._lock:
            if mono - self._synced_mono < WINDOW_SYNC_S:
                return False
            self._synced_mono = mono
            return True

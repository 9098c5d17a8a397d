"""The meters of one run: probe, start, read, stop -- errors recorded, never raised.

A meter that cannot run here, or breaks mid-run, is recorded with its reason or error in
:meth:`MeterSet.statuses` (stored with the run, quoted when a domain has no figure) and the
other meters carry on.

Meters that take seconds to start (``Meter.slow_start``: CodeCarbon's hardware detection,
Zeus's import) can start in the background: the run starts its job once the fast meters are
running, and a slow meter joins when ready (``on_ready``); one still starting when the job
ends is recorded as not measured, with the reason. ``greentrain run`` defers them further
(:meth:`MeterSet.start_deferred`): they begin :data:`SLOW_START_DELAY_S` after the job has
started. Their imports are CPU work that holds the GIL, so started earlier they would slow the
wrapper's own start and, for a short job, its finish; a job shorter than the delay could not
have had their figures anyway (they need seconds to start).

In a run group, :meth:`MeterSet.elect` puts a :class:`~greentrain.run.election.DeviceGate` on
every reading: the set then reports only the physical devices its wrapper won on this host
(see :mod:`greentrain.run.election`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greentrain import meters as registry
from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import Meter
from greentrain.record.readings import Readings
from greentrain.run.election import DeviceGate, Election

SLOW_START_DELAY_S = 0.3  # seconds after the job starts before slow meters begin to start


class MeterSet:
    """The meters of one run.

    Args:
        names: registry names to create (see :data:`greentrain.meters.METERS`).
        meters: ready meter objects (tests), used in addition to ``names``.
        options: constructor options per meter name.
    """

    def __init__(
        self,
        names: Sequence[str] = (),
        *,
        meters: Sequence[Meter] = (),
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.status: dict[str, dict[str, Any]] = {}
        self.running: dict[str, Meter] = {}
        self._candidates: list[tuple[str, Meter | None, str]] = []
        for name in names:
            try:
                meter = registry.create_meter(name, **dict((options or {}).get(name, {})))
                self._candidates.append((name, meter, ""))
            except ConfigError:
                raise
            except Exception as err:  # noqa: BLE001 - a broken meter must not stop the run
                self._candidates.append((name, None, f"{type(err).__name__}: {err}"))
        for meter in meters:
            self._candidates.append((meter.name, meter, ""))
        self._lock = threading.Lock()
        self._stopped = False
        self._on_ready: Callable[[str, Meter], None] | None = None
        self._starting: dict[str, float] = {}  # slow meters still starting -> since when
        self._deferred: list[tuple[str, Meter | None, str]] = []  # slow, not begun yet
        self.gate: DeviceGate | None = None

    def elect(self, election: Election) -> None:
        """From now on, report only the devices ``election`` gives this wrapper."""
        self.gate = DeviceGate(election)

    def _gated(self, readings: Readings) -> Readings:
        return self.gate.apply(readings) if self.gate is not None else readings

    def _set(self, name: str, **fields: Any) -> None:
        entry = self.status.setdefault(
            name,
            {"meter": name, "available": False, "reason": "", "fix": "", "error": None,
             "devices": []},
        )  # fmt: skip
        entry.update(fields)

    def start(
        self,
        *,
        background_slow: bool = False,
        on_ready: Callable[[str, Meter], None] | None = None,
        defer_slow: bool = False,
    ) -> None:
        """Probe every candidate and start the available ones, all meters concurrently.

        Probing and starting are dominated by library imports and hardware discovery (Zeus,
        CodeCarbon: seconds each), so they run in one thread per meter; the run's start
        latency is that of the slowest meter, not their sum. With ``background_slow`` this
        returns once the fast meters run; each slow one calls ``on_ready(name, meter)`` when it
        runs too.
        """
        for name, _, _ in self._candidates:
            self._set(name)  # status entries in candidate order, whatever finishes first
        late = [c for c in self._candidates if background_slow and c[1] is not None
                and c[1].slow_start]  # fmt: skip
        now = [c for c in self._candidates if c not in late]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(now))) as ex:
            started = list(ex.map(lambda c: self._probe_and_start(*c), now))
        for (name, _, _), meter in zip(now, started, strict=True):
            if meter is not None:
                self.running[name] = meter
        if defer_slow:
            self._deferred, self._on_ready = late, on_ready
            return
        for candidate in late:
            self._begin_late(candidate, on_ready, 0.0)

    def start_deferred(self, delay_s: float = SLOW_START_DELAY_S) -> None:
        """Begin the slow meters :meth:`start` deferred, each in its own thread after
        ``delay_s`` seconds (none begins once the set is stopped)."""
        deferred, self._deferred = self._deferred, []
        for candidate in deferred:
            self._begin_late(candidate, self._on_ready, delay_s)

    def _begin_late(self, candidate: tuple, on_ready: Callable | None, delay_s: float) -> None:
        self._starting[candidate[0]] = time.monotonic()
        thread = threading.Thread(
            target=self._start_late, args=(*candidate, on_ready, delay_s), daemon=True
        )
        thread.start()

    def _start_late(
        self,
        name: str,
        meter: Meter | None,
        create_error: str,
        on_ready: Callable[[str, Meter], None] | None,
        delay_s: float = 0.0,
    ) -> None:
        if delay_s > 0:
            time.sleep(delay_s)
            with self._lock:
                if self._stopped:
                    return  # the job ended first: stop() recorded why there is no figure
        started = self._probe_and_start(name, meter, create_error)
        with self._lock:
            self._starting.pop(name, None)
            if started is not None and not self._stopped:
                self.running[name] = started
        if started is None:
            return
        if self._stopped:  # the job ended first: release what the meter holds
            with contextlib.suppress(Exception):
                started.stop()
            return
        if on_ready is not None:
            try:
                on_ready(name, started)
            except Exception as err:  # noqa: BLE001 - record and carry on
                self._fail(name, err, "first read")

    def _probe_and_start(self, name: str, meter: Meter | None, create_error: str) -> Meter | None:
        """Probe and start one meter; returns it when running, else records why not."""
        if meter is None:
            self._set(name, available=False, reason=f"could not create: {create_error}")
            return None
        try:
            probe = meter.probe()
        except Exception as err:  # noqa: BLE001
            self._set(name, available=False, reason=f"probe failed: {err}")
            return None
        self._set(
            name,
            available=probe.available,
            reason=probe.reason,
            fix=probe.fix,
            devices=list(probe.devices),
        )
        if not probe.available:
            return None
        try:
            meter.start()
        except MeterUnavailable as err:
            self._set(name, available=False, reason=err.reason, fix=err.fix)
            return None
        except Exception as err:  # noqa: BLE001
            self._set(name, error=f"start failed: {type(err).__name__}: {err}")
            return None
        return meter

    def _fail(self, name: str, err: BaseException, when: str) -> None:
        self._set(name, error=f"{when} failed: {type(err).__name__}: {err}")
        meter = self.running.pop(name, None)
        if meter is not None:
            with contextlib.suppress(Exception):
                meter.stop()

    def read(self, only: str | None = None) -> Readings:
        """Cumulative readings of every healthy meter (or of meter ``only``); a meter that
        raises is dropped."""
        out: Readings = {}
        with self._lock:
            for name, meter in list(self.running.items()):
                if only is not None and name != only:
                    continue
                try:
                    out[name] = list(meter.read())
                except Exception as err:  # noqa: BLE001 - record and carry on
                    self._fail(name, err, "read")
            return self._gated(out)

    def stop(self) -> Readings:
        """Final cumulative readings; every meter is stopped (errors recorded); slow meters
        still starting are recorded as not measured."""
        out: Readings = {}
        with self._lock:
            self._stopped = True
            for name, _, _ in self._deferred:  # the job never started (or ended at once)
                self._set(name, available=False, reason="not started: the job did not run")
            self._deferred = []
            for name, since in self._starting.items():
                waited = time.monotonic() - since
                self._set(
                    name,
                    available=False,
                    reason=f"still starting when the job ended (after {waited:.1f} s); it needs "
                    "seconds to start, so it measures jobs longer than that",
                )
            for name, meter in list(self.running.items()):
                try:
                    out[name] = list(meter.stop())
                except Exception as err:  # noqa: BLE001
                    self._set(name, error=f"stop failed: {type(err).__name__}: {err}")
                self.running.pop(name, None)
            return self._gated(out)

    def attach(self, pid: int, reaped_s: Callable[[], float] | None = None) -> None:
        """Tell meters that follow a process tree (estimate) which child to follow, and how
        many CPU seconds of its processes the caller has reaped (``reaped_s``)."""
        for name, meter in list(self.running.items()):
            attach = getattr(meter, "attach", None)
            if callable(attach):
                try:
                    attach(pid, reaped_s)
                except Exception as err:  # noqa: BLE001
                    self._fail(name, err, "attach")

    def job_devices(self, pids: set[int]) -> dict[str, bool]:
        """GPU uuid -> whether one of ``pids`` runs on it, from meters that can tell (NVML)."""
        out: dict[str, bool] = {}
        for name, meter in list(self.running.items()):
            lister = getattr(meter, "job_devices", None)
            if callable(lister):
                try:
                    out.update(lister(pids))
                except Exception as err:  # noqa: BLE001 - a meter hiccup must not stop the run
                    self._set(name, error=f"listing GPU processes failed: {err}")
        return out

    def statuses(self) -> list[dict[str, Any]]:
        """Every meter's status: meter, available, reason, fix, error (mid-run), devices."""
        return [dict(v) for v in self.status.values()]

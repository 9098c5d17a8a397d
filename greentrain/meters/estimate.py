"""CPU and RAM energy *estimated* from a process tree's CPU time and memory (method ``estimated``).

Used for a domain only when no meter measured it. The model is job-attributable and dynamic:

* CPU: ``energy_j = busy_cpu_seconds x W_per_core``. ``busy_cpu_seconds`` is user + system time
  of the followed process tree (see below); ``W_per_core = TDP / physical cores`` from
  :data:`TDP_TABLE` matched against the CPU model string (``/proc/cpuinfo``), else
  :data:`DEFAULT_W_PER_CORE` = 12 W (Green Algorithms' default per-core TDP). A busy logical
  CPU is charged one core's share of TDP (Green Algorithms' convention). Idle/static machine
  power is not attributed (``greentrain run --baseline`` measures it).
* RAM: ``power_w = RSS_GB x 0.375 W/GB`` (:data:`W_PER_GB`, the constant used by Green
  Algorithms and CodeCarbon's former RAM model), integrated over time with the trapezoid rule
  from samples every ``interval_s`` (0.5 s) taken in a daemon thread. RSS of the tree's processes
  is summed (shared pages counted once per process: an upper bound).

Which process tree: ``EstimateMeter(pid=None)`` follows the current process and its
descendants (``greentrain.track``), counting CPU time since ``start()``. The harness spawns the
job after ``start()`` and calls :meth:`EstimateMeter.attach(pid)`; the attached process's whole
CPU time is then charged to the run. CPU time of processes that already exited is kept:
``psutil``'s ``children_user/children_system`` (``cutime``/``cstime`` of each live process) hold
reaped descendants, and once the attached child itself is reaped by the harness its total shows
in the harness's ``resource.getrusage(RUSAGE_CHILDREN)`` delta since ``start()``. (That delta
also includes any other short child the harness reaps, e.g. ``git``; descendants orphaned to
init are lost.) The cumulative figure never decreases.

Reads are cheap: one ``/proc`` walk of the tree, no blocking ``cpu_percent(interval=...)``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from greentrain.envinfo import cpu_model
from greentrain.errors import MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe
from greentrain.meters.poller import Poller
from greentrain.meters.proctree import reaped_children_s, tree_usage

W_PER_GB = 0.375
W_PER_GB_SOURCE = "Green Algorithms (and CodeCarbon before 2.4): 0.375 W per GB of memory"
DEFAULT_W_PER_CORE = 12.0
GB = 1024**3

# (regex on the CPU model string, TDP W, physical cores, label). First match wins; the
# generic family rows are typical mid-range parts and are recorded as such.
TDP_TABLE: tuple[tuple[str, float, int, str], ...] = (
    (r"EPYC 9654", 360.0, 96, "AMD EPYC 9654"),
    (r"EPYC 7763", 280.0, 64, "AMD EPYC 7763"),
    (r"EPYC 7742", 225.0, 64, "AMD EPYC 7742"),
    (r"EPYC 7543", 225.0, 32, "AMD EPYC 7543"),
    (r"Platinum 8480", 350.0, 56, "Intel Xeon Platinum 8480+"),
    (r"Platinum 8380", 270.0, 40, "Intel Xeon Platinum 8380"),
    (r"Gold 6248", 150.0, 20, "Intel Xeon Gold 6248"),
    (r"Gold 6338", 205.0, 32, "Intel Xeon Gold 6338"),
    (r"i9-13900K", 125.0, 24, "Intel Core i9-13900K"),
    (r"i7-12700", 65.0, 12, "Intel Core i7-12700"),
    (r"Apple M1", 20.0, 8, "Apple M1"),
    (r"EPYC", 225.0, 64, "AMD EPYC family default"),
    (r"Xeon", 205.0, 32, "Intel Xeon family default"),
)


def watts_per_core(model: str) -> tuple[float, str]:
    """(W per busy core, provenance) for a CPU model string."""
    for pattern, tdp_w, cores, label in TDP_TABLE:
        if re.search(pattern, model):
            return tdp_w / cores, f"TDP table: {label}, {tdp_w:g} W / {cores} cores"
    return (
        DEFAULT_W_PER_CORE,
        f"default {DEFAULT_W_PER_CORE:g} W per core (model {model!r} not in table)",
    )


class EstimateMeter(Meter):
    """Process-tree CPU/RAM power model (method ``"estimated"``).

    Args:
        pid: process to follow (with its descendants); None = this process.
        interval_s: RSS sampling period of the background thread, seconds.
        w_per_core: override the TDP-table value (W per busy core).
        clock: monotonic seconds source.
    """

    name = "estimate"

    def __init__(
        self,
        pid: int | None = None,
        interval_s: float = 0.5,
        w_per_core: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.model = cpu_model()
        if w_per_core is not None:
            self.w_per_core, self.tdp_source = float(w_per_core), "user override"
        else:
            self.w_per_core, self.tdp_source = watts_per_core(self.model)
        self._clock = clock
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self._started = False
        self._reaped_s: Callable[[], float] | None = None
        self._final: list[EnergyReading] | None = None

    def _psutil(self) -> Any:
        try:
            import psutil  # noqa: PLC0415 - lazy, like every hardware-facing library
        except ImportError as err:
            raise MeterUnavailable("package psutil not installed", "pip install psutil") from err
        return psutil

    def probe(self) -> Probe:
        try:
            self._psutil()
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        return Probe(
            self.name,
            True,
            devices=(
                f"cpu {self.model!r}: {self.w_per_core:.2f} W per busy core ({self.tdp_source})",
                f"ram: {W_PER_GB} W/GB of RSS",
            ),
        )

    def attach(self, pid: int, reaped_s: Callable[[], float] | None = None) -> None:
        """Follow ``pid`` (spawned after ``start()``); its whole CPU time is charged to the run.

        ``reaped_s``: CPU seconds of the job's processes the caller reaped (``greentrain run``
        waits for them itself); without it, this process's ``RUSAGE_CHILDREN`` growth counts.
        """
        self._reaped_s = reaped_s
        if not self._started:  # start() will charge this pid's whole CPU time
            self.pid = pid
            return
        with self._lock:
            self._sample_locked()  # close the previous tree's figures
            self._done_cpu_s = self._cpu_s  # keep what it used
            self.pid = pid
            self._attached = True
            self._base_tree_s = 0.0
            self._base_rusage_s = reaped_children_s()

    def start(self) -> None:
        self._psutil()
        pid = self.pid if self.pid is not None else os.getpid()
        tree_s, rss = tree_usage(pid)
        self._attached = self.pid is not None and self.pid != os.getpid()
        self._base_tree_s = 0.0 if self._attached else tree_s
        self._base_rusage_s = reaped_children_s()
        self._done_cpu_s = 0.0
        self._cpu_s = 0.0
        self._ram_j = 0.0
        self._rss_gb_s = 0.0
        self._last_t = self._clock()
        self._last_rss = rss
        self._samples = 1
        self._final = None
        self._started = True
        if self.interval_s:
            self._poller = Poller(self._sample, self.interval_s, "greentrain-estimate")
            self._poller.start()

    def _sample_locked(self) -> None:
        pid = self.pid if self.pid is not None else os.getpid()
        tree_s, rss = tree_usage(pid)
        cpu_s = max(0.0, tree_s - self._base_tree_s)
        if self._attached and self._reaped_s is not None:
            cpu_s += self._reaped_s()
        elif self._attached:
            cpu_s += max(0.0, reaped_children_s() - self._base_rusage_s)
        self._cpu_s = max(self._cpu_s, self._done_cpu_s + cpu_s)  # never decreases
        t = self._clock()
        self._rss_gb_s += (rss + self._last_rss) / 2.0 / GB * (t - self._last_t)
        self._ram_j = self._rss_gb_s * W_PER_GB
        self._last_t, self._last_rss = t, rss
        self._samples += 1

    def _sample(self) -> None:
        with self._lock:
            self._sample_locked()

    def _readings(self) -> list[EnergyReading]:
        with self._lock:
            self._sample_locked()
            cpu_s, ram_j, samples = self._cpu_s, self._ram_j, self._samples
            rss_gb_h = self._rss_gb_s / 3600.0
        followed = self.pid if self.pid is not None else os.getpid()
        return [
            EnergyReading(
                "cpu",
                "process-tree",
                cpu_s * self.w_per_core,
                "estimated",
                {
                    "model": "busy CPU seconds of the process tree x W per core",
                    "cpu_model": self.model,
                    "cpu_s": cpu_s,
                    "w_per_core": self.w_per_core,
                    "tdp_source": self.tdp_source,
                    "pid": followed,
                    "estimated": True,
                },
            ),
            EnergyReading(
                "dram",
                "process-tree",
                ram_j,
                "estimated",
                {
                    "model": "RSS GB-hours x W per GB (trapezoid over samples)",
                    "rss_gb_h": rss_gb_h,
                    "w_per_gb": W_PER_GB,
                    "w_per_gb_source": W_PER_GB_SOURCE,
                    "interval_s": self.interval_s,
                    "samples": samples,
                    "pid": followed,
                    "estimated": True,
                },
            ),
        ]

    def read(self) -> list[EnergyReading]:
        if not self._started:
            raise RuntimeError("estimate meter read before start()")
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return list(self._final)
        if not self._started:
            raise RuntimeError("estimate meter stopped before start()")
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self._final = self._readings()
        return list(self._final)

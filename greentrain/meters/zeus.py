"""GPU, CPU and DRAM energy through Zeus's ``ZeusMonitor`` (package ``zeus``, imported lazily).

Zeus reads the NVML energy counter (or samples power on pre-Volta GPUs), AMD SMI, and RAPL
(handling RAPL wrap-around in a helper process). Figures are labelled method ``"zeus"``.

Cumulative reads: Zeus measures *windows*. This meter opens one window at ``start()``; each
``read()`` ends it, adds its energy to running totals, and immediately begins a new one. The
energy lost between ``end_window`` and the next ``begin_window`` is that of a few counter
reads (microseconds). ``sync_execution`` is always off: the meter runs in the wrapping process,
which has no CUDA work of its own to wait for.

On a machine with neither a GPU nor readable RAPL, ZeusMonitor silently measures nothing and
returns totals of 0 J; this meter's probe reports that as *unavailable* with Zeus's own reasons,
never as 0 J. Zeus's "window shorter than the counter update period" warning is silenced (our
windows are re-opened at every read, so zero-length windows are expected and harmless), and
Zeus's loggers are capped at WARNING.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from greentrain.errors import MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe

INSTALL_FIX = "pip install zeus"
_WINDOW = "greentrain"


def _quiet_zeus_logs() -> None:
    log = logging.getLogger("zeus")
    if log.level == logging.NOTSET or log.level < logging.WARNING:
        log.setLevel(logging.WARNING)


class ZeusMeter(Meter):
    """Zeus-backed meter (method ``"zeus"``) for every GPU and CPU package Zeus can see.

    Args:
        monitor_factory: callable returning a ZeusMonitor-like object (tests may inject one);
            default ``zeus.monitor.ZeusMonitor``.
    """

    name = "zeus"
    slow_start = True  # seconds of imports and hardware detection

    def __init__(self, monitor_factory: Any = None) -> None:
        self._factory = monitor_factory
        self._monitor: Any = None
        self._totals: dict[tuple[str, int], float] = {}
        self._final: list[EnergyReading] | None = None

    @staticmethod
    def _zeus_devices() -> tuple[int, int, list[str]]:
        """(GPU count, CPU package count, Zeus's reasons) from Zeus's device singletons.

        Cheaper than a ZeusMonitor (no power-monitor process for pre-Volta GPUs): used by
        ``probe()`` and to explain an empty monitor.
        """
        try:
            from zeus.device.cpu import get_cpus  # noqa: PLC0415 - heavy, lazy
            from zeus.device.gpu import get_gpus  # noqa: PLC0415
        except ImportError as err:
            raise MeterUnavailable("package zeus not installed", INSTALL_FIX) from err
        reasons, n_gpu, n_cpu = [], 0, 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                n_gpu = len(get_gpus())
            except Exception as err:  # noqa: BLE001 - ZeusGPUInitError and friends
                reasons.append(f"GPUs: {err}")
            try:
                n_cpu = len(get_cpus())
            except Exception as err:  # noqa: BLE001 - ZeusCPUInitError / NoPermission
                reasons.append(f"CPU RAPL: {err}")
        return n_gpu, n_cpu, reasons

    @staticmethod
    def _nothing(reasons: list[str]) -> MeterUnavailable:
        return MeterUnavailable(
            "Zeus found no GPU and no readable RAPL counters, so it would report 0 J ("
            + ("; ".join(reasons) or "no device reported")
            + ")",
            "run on a machine with an NVIDIA/AMD GPU, or grant RAPL read access "
            "(see `greentrain doctor` for the rapl meter)",
        )

    def _make_monitor(self) -> Any:
        _quiet_zeus_logs()
        if self._factory is None:
            try:
                from zeus.monitor import ZeusMonitor  # noqa: PLC0415 - heavy, lazy
            except ImportError as err:
                raise MeterUnavailable("package zeus not installed", INSTALL_FIX) from err
            self._factory = ZeusMonitor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monitor = self._factory()
        if not monitor.gpu_indices and not monitor.cpu_indices:
            raise self._nothing([] if self._factory is not None else self._zeus_devices()[2])
        return monitor

    def probe(self) -> Probe:
        _quiet_zeus_logs()
        try:
            if self._factory is not None:  # injected monitor (tests): ask it directly
                monitor = self._make_monitor()
                gpus, cpus = list(monitor.gpu_indices), list(monitor.cpu_indices)
            else:
                n_gpu, n_cpu, reasons = self._zeus_devices()
                if not n_gpu and not n_cpu:
                    raise self._nothing(reasons)
                gpus, cpus = list(range(n_gpu)), list(range(n_cpu))
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        except Exception as err:  # noqa: BLE001 - anything Zeus raises is a reason
            return Probe(self.name, False, f"Zeus failed to initialise: {err}", INSTALL_FIX)
        devices = [f"gpu:{i}" for i in gpus] + [f"package-{i} (cpu)" for i in cpus]
        return Probe(self.name, True, devices=tuple(devices))

    def start(self) -> None:
        self._monitor = self._make_monitor()
        self._totals = {}
        self._final = None
        self._monitor.begin_window(_WINDOW, sync_execution=False)

    def _add(self, m: Any) -> None:
        """Add one ended window's energies (joules per device index) to the totals."""
        for domain, per_index in (
            ("gpu", m.gpu_energy),
            ("cpu", m.cpu_energy),
            ("dram", m.dram_energy),
        ):
            for index, energy_j in (per_index or {}).items():
                key = (domain, int(index))
                self._totals[key] = self._totals.get(key, 0.0) + float(energy_j)

    def _roll_window(self) -> None:
        """End the open window, add it to the totals, begin the next one."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = self._monitor.end_window(_WINDOW, sync_execution=False)
            self._monitor.begin_window(_WINDOW, sync_execution=False)
        self._add(m)

    def _readings(self) -> list[EnergyReading]:
        labels = {"gpu": "gpu:{}", "cpu": "package-{}", "dram": "dram-{}"}
        return [
            EnergyReading(
                domain, labels[domain].format(index), energy_j, "zeus", {"via": "ZeusMonitor"}
            )
            for (domain, index), energy_j in sorted(self._totals.items())
        ]

    def read(self) -> list[EnergyReading]:
        if self._monitor is None:
            raise RuntimeError("zeus meter read before start()")
        self._roll_window()
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return list(self._final)
        if self._monitor is None:
            raise RuntimeError("zeus meter stopped before start()")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = self._monitor.end_window(_WINDOW, sync_execution=False)
        self._add(m)
        self._final = self._readings()
        return list(self._final)

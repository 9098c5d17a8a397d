"""GPU energy from NVIDIA's NVML (package ``nvidia-ml-py``, imported lazily as ``pynvml``).

Devices: every GPU visible to the job, found as CUDA finds them from ``CUDA_VISIBLE_DEVICES``
(:mod:`greentrain.meters.nvml_devices`). Device labels are ``gpu:<i>`` with ``i`` the index as
the job sees it. A MIG instance is metered through its parent GPU (NVML has no per-MIG
energy), recorded in the reading's ``detail``.

Methods, per device:

* ``counter``: ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since driver load, Volta and
  newer). Differences since ``start()``; a counter that goes backwards (driver reload / reset)
  is taken as restarted from 0, and accumulation continues.
* ``sampled``: ``nvmlDeviceGetPowerUsage`` (milliwatts) polled every ``interval_s`` (default
  0.1 s) in a daemon thread and integrated with the trapezoid rule. On recent GPUs this power
  figure is itself a ~1 s moving average, so short spikes are smoothed.

``mode="auto"`` uses the counter where supported, else samples; ``"sampled"`` forces sampling
(to compare both); ``"counter"`` refuses devices without a counter.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe
from greentrain.meters.nvml_devices import DRIVER_FIX, load_library, text, visible_gpus
from greentrain.meters.poller import Poller

MODES = ("auto", "counter", "sampled")


@dataclass
class _Device:
    label: str  # gpu:<i>
    handle: Any
    name: str
    uuid: str
    parent_of_mig: str | None = None
    method: str = "counter"
    start_mj: int = 0
    last_mj: int = 0
    total_mj: int = 0
    # sampled mode state
    last_t: float | None = None
    last_w: float | None = None
    energy_j: float = 0.0
    samples: int = 0
    extra: dict = field(default_factory=dict)


class NvmlMeter(Meter):
    """NVML GPU energy meter (methods ``counter`` or ``sampled``, per device).

    Args:
        mode: ``"auto"`` | ``"counter"`` | ``"sampled"`` (see module docstring).
        interval_s: power sampling period for ``sampled`` devices, seconds (<= 0.1 recommended).
        nvml: the pynvml module to use (tests inject a fake); default imports ``pynvml``.
        environ: where to read ``CUDA_VISIBLE_DEVICES`` (default ``os.environ``).
        clock: monotonic seconds source for sampling.
    """

    name = "nvml"

    def __init__(
        self,
        mode: str = "auto",
        interval_s: float = 0.1,
        *,
        nvml: Any = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"nvml mode {mode!r} unknown; use one of {', '.join(MODES)}")
        if interval_s <= 0:
            raise ConfigError("nvml interval_s must be > 0 seconds")
        self.mode = mode
        self.interval_s = interval_s
        self._nvml = nvml
        self._environ = environ
        self._clock = clock
        self._devices: list[_Device] = []
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self._final: list[EnergyReading] | None = None
        self._initialised = False

    # -- library and device discovery ---------------------------------------------------------
    def _lib(self) -> Any:
        if self._nvml is None:
            self._nvml = load_library()
        return self._nvml

    def _init(self) -> Any:
        nv = self._lib()
        try:
            nv.nvmlInit()
        except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise MeterUnavailable(
                f"NVML init failed: {err} (no NVIDIA driver?)", DRIVER_FIX
            ) from err
        self._initialised = True
        return nv

    def _shutdown(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down is best effort
                pass

    def _visible(self, nv: Any) -> list[_Device]:
        env = os.environ if self._environ is None else self._environ
        return [
            _Device(label=f"gpu:{i}", handle=h, name=text(nv.nvmlDeviceGetName(h)), uuid=u,
                    parent_of_mig=mig)
            for i, (h, u, mig) in enumerate(visible_gpus(nv, env.get("CUDA_VISIBLE_DEVICES")))
        ]  # fmt: skip

    def probe(self) -> Probe:
        try:
            nv = self._init()
            try:
                devices = self._visible(nv)
            finally:
                self._shutdown()
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        except Exception as err:  # noqa: BLE001 - NVML errors while listing devices
            return Probe(self.name, False, f"NVML error: {err}", DRIVER_FIX)
        if not devices:
            return Probe(
                self.name,
                False,
                "no NVIDIA GPU visible to the job",
                "check CUDA_VISIBLE_DEVICES and `nvidia-smi`",
            )
        return Probe(self.name, True, devices=tuple(f"{d.label} {d.name}" for d in devices))

    # -- measuring ----------------------------------------------------------------------------
    def start(self) -> None:
        nv = self._init()
        devices = self._visible(nv)
        if not devices:
            self._shutdown()
            raise MeterUnavailable("no NVIDIA GPU visible to the job", "check CUDA_VISIBLE_DEVICES")
        now = self._clock()
        for d in devices:
            d.method = "sampled"
            if self.mode != "sampled":
                try:
                    d.start_mj = d.last_mj = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
                    d.method = "counter"
                except Exception as err:  # NVML_ERROR_NOT_SUPPORTED on pre-Volta GPUs
                    if self.mode == "counter":
                        self._shutdown()
                        raise MeterUnavailable(
                            f"{d.label} {d.name} has no energy counter ({err})",
                            "use mode 'auto' or 'sampled'",
                        ) from err
            if d.method == "sampled":
                d.last_t = now
                d.last_w = nv.nvmlDeviceGetPowerUsage(d.handle) / 1000.0
                d.samples = 1
        self._devices = devices
        self._final = None
        if any(d.method == "sampled" for d in devices):
            self._poller = Poller(self._sample_once, self.interval_s, "greentrain-nvml")
            self._poller.start()

    def _sample_once(self) -> None:
        nv = self._nvml
        with self._lock:
            for d in self._devices:
                if d.method != "sampled":
                    continue
                power_w = nv.nvmlDeviceGetPowerUsage(d.handle) / 1000.0
                t = self._clock()
                d.energy_j += (power_w + d.last_w) / 2.0 * (t - d.last_t)  # trapezoid
                d.last_t, d.last_w = t, power_w
                d.samples += 1

    def _read_counters(self) -> None:
        nv = self._nvml
        with self._lock:
            for d in self._devices:
                if d.method != "counter":
                    continue
                now = int(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
                if now >= d.last_mj:
                    d.total_mj += now - d.last_mj
                else:  # went backwards: counter reset (driver reload) -> restarted from 0
                    d.total_mj += now
                    d.extra["resets"] = d.extra.get("resets", 0) + 1
                d.last_mj = now

    def read(self) -> list[EnergyReading]:
        if not self._devices:
            raise RuntimeError("nvml meter read before start()")
        err = self._poller.error if self._poller is not None else None
        if err is not None:
            raise RuntimeError(f"NVML power sampling failed: {err}") from err
        self._read_counters()
        self._sample_once()
        out = []
        for d in self._devices:
            detail: dict[str, Any] = {"name": d.name, "uuid": d.uuid}
            if d.parent_of_mig:
                detail["mig"] = d.parent_of_mig
                detail["note"] = "MIG instance metered through its whole parent GPU"
            detail.update(d.extra)
            if d.method == "counter":
                energy_j = d.total_mj / 1000.0
            else:
                energy_j = d.energy_j
                detail.update({"interval_s": self.interval_s, "samples": d.samples})
            out.append(EnergyReading("gpu", d.label, energy_j, d.method, detail))
        return out

    def job_devices(self, pids: set[int]) -> dict[str, bool]:
        """For each metered GPU (by uuid): whether one of ``pids`` runs on it (compute or
        graphics processes NVML lists); {} before ``start()``."""
        nv, out = self._nvml, {}
        for d in self._devices:
            found: set[int] = set()
            for lister in ("nvmlDeviceGetComputeRunningProcesses",
                           "nvmlDeviceGetGraphicsRunningProcesses"):  # fmt: skip
                try:
                    found.update(int(p.pid) for p in getattr(nv, lister)(d.handle))
                except Exception:  # noqa: BLE001 - not supported on this GPU/driver
                    continue
            out[d.uuid] = bool(found & pids)
        return out

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return list(self._final)
        if self._poller is not None:
            self._poller.stop()  # its error, if any, is raised by read()
        try:
            self._final = self.read()
        finally:
            self._poller = None
            self._shutdown()
        return list(self._final)

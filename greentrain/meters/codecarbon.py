"""CPU, GPU and RAM energy as CodeCarbon estimates it, offline only.

Only ``codecarbon.OfflineEmissionsTracker`` is used (never ``EmissionsTracker``, which calls
geolocation services and probes the cloud metadata address). The tracker is built with the
country from the run's carbon settings, no output handler (``output_methods=[]``: no CSV, no
API, no Prometheus/Logfire), ``emissions_endpoint=None``, ``electricitymaps_api_token=None``,
no cloud provider, and ``allow_multiple_runs=True`` (no lock file): with these, every code path
it runs is local (checked in the tests with a socket guard).

Cumulative reads use CodeCarbon's public *task* API: ``start_task()`` at ``start()``; each
``read()`` does ``stop_task()`` (which returns the task's ``EmissionsData``, energies in kWh),
adds it to running totals, and ``start_task()`` again. The periodic scheduler of
``tracker.start()`` is not used.

Provenance: figures are labelled method ``"codecarbon"``; ``detail`` holds CodeCarbon's
``tracking_mode`` (``"machine"``: the whole host, the default here, consistent with NVML/RAPL;
``"process"``: this process and its children), its CPU mode (``intel_rapl``, ``cpu_load`` =
TDP x load model, ``constant`` = TDP x 50 %), and ``estimated``: true for the CPU figure when
CodeCarbon used a TDP model rather than a counter, and always for RAM (a W-per-GB model). The
CO2 CodeCarbon computed is in ``detail["codecarbon_emissions_g"]`` (the run's own CO2 figure
comes from :mod:`greentrain.carbon`). PUE is passed as 1.0 so energies are raw device energy.

Start-up cost: the first ``start_task`` of a process runs CodeCarbon's hardware detection
(~2 s on a loaded 2-core VM); later trackers in the same process reuse its cached plan.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from greentrain.carbon import country_codes
from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe
from greentrain.meters.quiet import quiet_thread
from greentrain.units import kwh_to_joules

TRACKING_MODES = ("machine", "process")
INSTALL_FIX = "pip install codecarbon"
_ESTIMATED_CPU_MODES = ("cpu_load", "constant")


@contextlib.contextmanager
def _quiet():
    """Silence CodeCarbon's start-up chatter (and amdsmi's print) in this thread only."""
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    with quiet_thread():
        yield


def _cpu_mode(tracker: Any) -> str | None:
    """CodeCarbon's CPU measurement mode (``intel_rapl``, ``cpu_load``, ``constant``, ...).

    PRIVATE ACCESS, isolated here on purpose: CodeCarbon 3.x exposes the mode only through its
    hardware objects' ``_mode`` attribute (``tracker._hardware``). Returns None if that changes.
    """
    for hw in getattr(tracker, "_hardware", []) or []:
        if type(hw).__name__ == "CPU":
            return getattr(hw, "_mode", None)
    return None


class CodeCarbonMeter(Meter):
    """CodeCarbon offline tracker as a meter (method ``"codecarbon"``).

    Args:
        country_iso_code: ISO-3166 alpha-3 country for CodeCarbon's own CO2 figure (required by
            the offline tracker; default ``"USA"``; the harness passes the run's country).
        region: optional US state / Canadian province (CodeCarbon's offline region data).
        tracking_mode: ``"machine"`` (default) or ``"process"``.
        tracker_factory: callable returning an OfflineEmissionsTracker-like object (tests).
    """

    name = "codecarbon"
    slow_start = True  # seconds of imports and hardware detection

    def __init__(
        self,
        country_iso_code: str = "USA",
        region: str | None = None,
        tracking_mode: str = "machine",
        *,
        tracker_factory: Any = None,
    ) -> None:
        if tracking_mode not in TRACKING_MODES:
            raise ConfigError(
                f"codecarbon tracking_mode {tracking_mode!r} unknown; use machine or process"
            )
        self.country_iso_code = country_iso_code.upper()
        self.region = region.lower() if region else None
        self.tracking_mode = tracking_mode
        self._factory = tracker_factory
        self._tracker: Any = None
        self._task = 0
        self._totals_kwh = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
        self._emissions_kg = 0.0
        self._last: Any = None
        self._final: list[EnergyReading] | None = None

    def _make_tracker(self) -> Any:
        with _quiet():
            if self._factory is None:
                try:
                    from codecarbon import OfflineEmissionsTracker  # noqa: PLC0415 - lazy
                except ImportError as err:
                    raise MeterUnavailable("package codecarbon not installed", INSTALL_FIX) from err
                self._factory = OfflineEmissionsTracker
            return self._factory(
                country_iso_code=self.country_iso_code,
                region=self.region,
                cloud_provider=None,
                cloud_region=None,
                tracking_mode=self.tracking_mode,
                output_methods=[],
                emissions_endpoint=None,
                electricitymaps_api_token=None,
                log_level="error",
                pue=1.0,
                allow_multiple_runs=True,
                project_name="greentrain",
            )

    def _check_country(self) -> None:

        if self.country_iso_code not in country_codes():
            raise ConfigError(
                f"unknown country {self.country_iso_code!r} for codecarbon; use an ISO-3166 "
                "alpha-3 code such as USA, FRA, DEU, GBR, CHN"
            )

    def probe(self) -> Probe:
        try:
            self._check_country()
            self._make_tracker()
        except ConfigError as err:
            return Probe(self.name, False, str(err), "pass a valid --country")
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        except Exception as err:  # noqa: BLE001 - any construction failure is a reason
            return Probe(self.name, False, f"CodeCarbon failed to initialise: {err}", "")
        return Probe(
            self.name,
            True,
            devices=(
                f"cpu, ram ({self.tracking_mode} mode; CPU from "
                "RAPL if readable, else a TDP x load estimate; RAM from a W/GB model)",
            ),
        )

    def start(self) -> None:
        self._check_country()
        self._tracker = self._make_tracker()
        self._totals_kwh = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
        self._emissions_kg = 0.0
        self._final = None
        self._task = 0
        with _quiet():
            self._tracker.start_task(f"greentrain-{self._task}")

    def _close_task(self, reopen: bool) -> None:
        # quiet as well: reads happen while the job runs, and only this thread is silenced
        with _quiet():
            data = self._tracker.stop_task()
            if reopen:
                self._task += 1
                self._tracker.start_task(f"greentrain-{self._task}")
        if data is None:
            raise RuntimeError("CodeCarbon task was not running (stop_task returned None)")
        self._totals_kwh["cpu"] += float(data.cpu_energy or 0.0)
        self._totals_kwh["gpu"] += float(data.gpu_energy or 0.0)
        self._totals_kwh["ram"] += float(data.ram_energy or 0.0)
        self._emissions_kg += float(data.emissions or 0.0)
        self._last = data

    def _readings(self) -> list[EnergyReading]:
        data = self._last
        cpu_mode = _cpu_mode(self._tracker)
        common = {
            "tracking_mode": getattr(data, "tracking_mode", self.tracking_mode),
            "country_iso_code": self.country_iso_code,
            "region": self.region,
            "codecarbon_emissions_g": self._emissions_kg * 1000.0,
            "codecarbon_version": getattr(data, "codecarbon_version", None),
        }
        out = [
            EnergyReading(
                "cpu",
                "host" if self.tracking_mode == "machine" else "process-tree",
                kwh_to_joules(self._totals_kwh["cpu"]),
                "codecarbon",
                {
                    **common,
                    "cpu_mode": cpu_mode,
                    "cpu_model": getattr(data, "cpu_model", None),
                    "estimated": cpu_mode in _ESTIMATED_CPU_MODES or cpu_mode is None,
                },
            ),
            EnergyReading(
                "dram",
                "host",
                kwh_to_joules(self._totals_kwh["ram"]),
                "codecarbon",
                {
                    **common,
                    "model": "RAM power from CodeCarbon's W-per-GB model",
                    "estimated": True,
                },
            ),
        ]
        if getattr(data, "gpu_count", 0):
            out.append(
                EnergyReading(
                    "gpu",
                    "all",
                    kwh_to_joules(self._totals_kwh["gpu"]),
                    "codecarbon",
                    {
                        **common,
                        "gpu_model": getattr(data, "gpu_model", None),
                        "gpu_count": data.gpu_count,
                    },
                )
            )
        return out

    def read(self) -> list[EnergyReading]:
        if self._tracker is None:
            raise RuntimeError("codecarbon meter read before start()")
        self._close_task(reopen=True)
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return list(self._final)
        if self._tracker is None:
            raise RuntimeError("codecarbon meter stopped before start()")
        self._close_task(reopen=False)
        self._final = self._readings()
        return list(self._final)

"""Energy meters behind one interface (:mod:`greentrain.meters.base`), one file per backend.

* :data:`METERS` maps a meter name to ``"module:Class"``; modules are imported on first use, so
  importing this package touches no hardware library.
* :func:`create_meter` builds one meter; :func:`probe_all` probes several without starting them;
  :func:`warm_up` starts and stops meters once to pay their one-time start-up costs.

Which meter's figure wins for a domain is decided by :mod:`greentrain.record.ranking`, for a
live run and a stored one alike.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
from collections.abc import Iterable

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe

METERS: dict[str, str] = {
    "nvml": "greentrain.meters.nvml:NvmlMeter",
    "zeus": "greentrain.meters.zeus:ZeusMeter",
    "codecarbon": "greentrain.meters.codecarbon:CodeCarbonMeter",
    "rapl": "greentrain.meters.rapl:RaplMeter",
    "estimate": "greentrain.meters.estimate:EstimateMeter",
    "fake": "greentrain.meters.fake:FakeMeter",
    "prometheus": "greentrain.meters.prometheus:PrometheusMeter",
}

# Meters used by ``greentrain run`` when no --meter is given (each only if its probe passes).
DEFAULT_METERS: tuple[str, ...] = ("nvml", "zeus", "codecarbon", "rapl", "estimate")

__all__ = [
    "METERS",
    "DEFAULT_METERS",
    "create_meter",
    "meter_class",
    "probe_all",
    "available_meters",
    "warm_up",
    "Meter",
    "Probe",
    "EnergyReading",
]


def meter_class(name: str) -> type[Meter]:
    """The class registered under ``name``; ConfigError for an unknown name."""
    try:
        target = METERS[name]
    except KeyError:
        raise ConfigError(f"unknown meter {name!r}; choose from: {', '.join(METERS)}") from None
    module_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def create_meter(name: str, **opts) -> Meter:
    """Instantiate meter ``name`` with keyword options (see each meter's constructor)."""
    return meter_class(name)(**opts)


def probe_all(names: Iterable[str] | None = None, **opts_by_meter: dict) -> list[Probe]:
    """Probe meters (default: every registered meter) without starting them.

    ``opts_by_meter`` passes constructor options per meter, e.g.
    ``probe_all(codecarbon={"country_iso_code": "FRA"})``. A meter whose construction or probe
    fails unexpectedly is reported unavailable with the error as reason (never raised).
    """
    probes = []
    for name in list(names) if names is not None else list(METERS):
        try:
            probes.append(create_meter(name, **opts_by_meter.get(name, {})).probe())
        except ConfigError:
            raise
        except MeterUnavailable as err:
            probes.append(Probe(name, False, err.reason, err.fix))
        except Exception as err:  # noqa: BLE001 - a probe must never break the caller
            probes.append(Probe(name, False, f"probe failed: {type(err).__name__}: {err}", ""))
    return probes


def available_meters(names: Iterable[str] | None = None) -> list[str]:
    """Names of the meters whose probe passes (default candidates: :data:`DEFAULT_METERS`)."""
    candidates = list(names) if names is not None else list(DEFAULT_METERS)
    return [p.meter for p in probe_all(candidates) if p.available]


def warm_up(names: Iterable[str]) -> None:
    """Start and stop each meter once, concurrently, ignoring every failure.

    The first start of a meter in a process costs seconds (CodeCarbon detects the hardware,
    Zeus imports); a comparison of two runs in one process calls this first so that neither
    run carries those costs.
    """

    def once(name: str) -> None:
        with contextlib.suppress(Exception):
            meter = create_meter(name)
            if meter.probe().available:
                meter.start()
                meter.stop()

    names = list(names)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(once, names))

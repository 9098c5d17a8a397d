"""Energy meters behind one interface (:mod:`greentrain.meters.base`) and the best-figure choice.

* :data:`METERS` maps a meter name to ``"module:Class"``; modules are imported on first use, so
  importing this package touches no hardware library.
* :func:`create_meter` builds one meter; :func:`probe_all` probes several without starting them.
* :func:`select_best` turns the cumulative readings of several meters into one figure per domain
  (the run record's ``energy`` object) with the others kept as alternatives.

Best figure per domain: the method ranked highest in
:data:`~greentrain.meters.base.METHOD_PRIORITY` wins (``counter > sampled > zeus > rapl >
codecarbon > estimated > fake``). Zeus reads the NVML energy counter for GPUs and RAPL for CPU
and DRAM, so it ranks next to those direct readings, after NVML (which we read ourselves) and
before our own RAPL reader (same source; ties are rare). ``estimated`` figures are used for a
domain only when no other meter measured it, which the ranking guarantees.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import DOMAINS, METHOD_PRIORITY, EnergyReading, Meter, Probe

METERS: dict[str, str] = {
    "nvml": "greentrain.meters.nvml:NvmlMeter",
    "zeus": "greentrain.meters.zeus:ZeusMeter",
    "codecarbon": "greentrain.meters.codecarbon:CodeCarbonMeter",
    "rapl": "greentrain.meters.rapl:RaplMeter",
    "estimate": "greentrain.meters.estimate:EstimateMeter",
    "fake": "greentrain.meters.fake:FakeMeter",
}

# Meters used by ``greentrain run`` when no --meter is given (each only if its probe passes).
DEFAULT_METERS: tuple[str, ...] = ("nvml", "zeus", "codecarbon", "rapl", "estimate")

# Tie-break between meters whose figures share a method.
_METER_ORDER: tuple[str, ...] = ("nvml", "zeus", "rapl", "codecarbon", "estimate", "fake")

__all__ = [
    "METERS",
    "DEFAULT_METERS",
    "create_meter",
    "meter_class",
    "probe_all",
    "available_meters",
    "select_best",
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


def _rank(method: str) -> int:
    return METHOD_PRIORITY.index(method) if method in METHOD_PRIORITY else len(METHOD_PRIORITY)


def _meter_rank(meter: str) -> int:
    return _METER_ORDER.index(meter) if meter in _METER_ORDER else len(_METER_ORDER)


def _disagreement_pct(value_j: float, best_j: float) -> float | None:
    if best_j == 0:
        return None
    return (value_j - best_j) / best_j * 100.0


def select_best(
    readings_by_meter: Mapping[str, list[EnergyReading] | None],
    unavailable: Mapping[str, str] | None = None,
) -> dict[str, dict]:
    """One best figure per domain (gpu, cpu, dram), the others as alternatives.

    Args:
        readings_by_meter: meter name -> its cumulative (or window-difference) readings; None or
            an empty list for a meter that produced nothing.
        unavailable: meter name -> reason it gave no figure; quoted in a domain's ``reason``
            when no meter measured that domain.

    Returns:
        ``{domain: {"energy_j", "source": "meter:method", "estimated", "devices": {device:
        energy_j}, "alternatives": [{"meter", "method", "energy_j", "disagreement_pct"}]}}``, or
        ``{domain: {"energy_j": None, "reason": str}}`` for a domain nobody measured.
        ``estimated`` is true for method ``estimated`` and for figures a meter flagged
        ``detail["estimated"]`` (e.g. CodeCarbon's TDP fallback). ``disagreement_pct`` is
        ``(alternative - best) / best * 100`` (None when the best figure is 0 J).
    """
    result: dict[str, dict] = {}
    for domain in DOMAINS:
        candidates = []
        for meter, readings in readings_by_meter.items():
            mine = [r for r in (readings or []) if r.domain == domain]
            if not mine:
                continue
            # a meter mixing methods across devices (e.g. one GPU counter, one sampled) is ranked
            # by its least direct method
            method = max((r.method for r in mine), key=_rank)
            devices: dict[str, float] = {}
            for r in mine:
                devices[r.device] = devices.get(r.device, 0.0) + r.energy_j
            estimated = any(r.method == "estimated" or r.detail.get("estimated") for r in mine)
            candidates.append(
                {
                    "meter": meter,
                    "method": method,
                    "energy_j": sum(devices.values()),
                    "devices": devices,
                    "estimated": estimated,
                }
            )
        if not candidates:
            why = "no meter measured " + domain
            if unavailable:
                why += " (" + "; ".join(f"{m}: {r}" for m, r in unavailable.items()) + ")"
            result[domain] = {"energy_j": None, "reason": why}
            continue
        candidates.sort(key=lambda c: (_rank(c["method"]), _meter_rank(c["meter"]), c["meter"]))
        best, others = candidates[0], candidates[1:]
        result[domain] = {
            "energy_j": best["energy_j"],
            "source": f"{best['meter']}:{best['method']}",
            "estimated": best["estimated"],
            "devices": best["devices"],
            "alternatives": [
                {
                    "meter": c["meter"],
                    "method": c["method"],
                    "energy_j": c["energy_j"],
                    "disagreement_pct": _disagreement_pct(c["energy_j"], best["energy_j"]),
                }
                for c in others
            ],
        }
    return result

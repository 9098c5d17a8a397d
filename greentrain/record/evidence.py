"""Other meters that measured the same run, in the same process: evidence beside greentrain's
figures, never part of them.

HF's ``report_to=["codecarbon"]`` (or a script's own ``EmissionsTracker``) and Zeus's
``ZeusMonitor`` measure the run too, by their own method and scope, with their own carbon
intensity. The integrations hand their figures to the run (:func:`greentrain.client.evidence`),
which stores them as an ``other meter`` event; readers turn each into one entry of the run
object's ``energy_alternatives``::

    {"meter": "codecarbon", "method", "scope", "evidence": True,
     "energy_j", "disagreement_pct",                      # vs the run's total (joules, %)
     "domains": {domain: {"energy_j", "ours_j", "disagreement_pct"}},
     "co2_g", "co2_disagreement_pct", "intensity_g_per_kwh", "intensity_disagreement_pct",
     "intensity_source", "region", "duration_s", "why": str}

``disagreement_pct`` is ``(other - ours) / ours * 100`` (None without both figures), the same
formula as a domain's alternatives. CO2e's gap is the energy gap times the intensity gap
(``1 + co2/100 = (1 + energy/100) * (1 + intensity/100)`` at a PUE of 1). ``why`` names the
reasons the figures differ: the scope (CodeCarbon's machine-level CPU/RAM model or its process
share vs greentrain's process-tree attribution; Zeus's device counters) for energy, the carbon
intensity and its source (CodeCarbon's country/region mix vs the intensity the run states)
for CO2e -- so an energy gap and a CO2e gap are told apart. A figure the other meter did not
give is None, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from greentrain.record.ranking import disagreement_pct

EVIDENCE_EVENT = "other meter"
# An entry's fields exported as tracker params ``evidence.<meter>.<field>``:
EVIDENCE_PARAMS = ("scope", "method", "energy_j", "disagreement_pct", "co2_g",
                   "co2_disagreement_pct", "intensity_g_per_kwh", "intensity_source",
                   "why")  # fmt: skip

SCOPES = {
    "machine": "the whole machine's CPU and RAM (its power model, not the job's share)",
    "process": "this process's share of CPU and RAM by its own model",
    "devices": "the devices' own energy counters (GPUs, RAPL zones), whoever used them",
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _pct(other: float | None, ours: float | None) -> float | None:
    return disagreement_pct(other, ours) if other is not None and ours is not None else None


def _ours_j(energy: Mapping[str, Any], domain: str) -> float | None:
    figure = energy.get(domain)
    return _number(figure.get("energy_j")) if isinstance(figure, Mapping) else None


def why_they_differ(
    meter: str, scope: str, intensity: float | None, source: str | None, carbon: Mapping
) -> str:
    """One sentence: why ``meter``'s figures differ from the run's (scope, then intensity)."""
    what = SCOPES.get(scope, f"scope {scope}")
    text = f"{meter} measures {what}; greentrain attributes energy to the job's process tree"
    ours = _number(carbon.get("intensity_g_per_kwh"))
    if intensity is None:
        return text + "; no CO2e intensity from " + meter
    ours_s = f"{ours:g} g/kWh ({carbon.get('source') or 'unstated'})" if ours else "none"
    same = ours is not None and math.isclose(intensity, ours, rel_tol=0.01)
    verb = "the same intensity" if same else "a different intensity"
    return (
        f"{text}; CO2e uses {verb}: {meter} {intensity:.4g} g/kWh ({source or 'unstated'}) "
        f"vs greentrain {ours_s}"
    )


def evidence_alternatives(
    events: Iterable[Any],
    energy: Mapping[str, Any],
    energy_j: float | None,
    co2_g: float | None,
    carbon: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The run's ``energy_alternatives`` from other meters' events (the last one per meter):
    ``energy`` is the run's figure per domain, ``energy_j`` its total (J), ``co2_g`` its CO2e
    (grams), ``carbon`` its stated intensity (g/kWh) and source."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if not isinstance(event, Mapping) or event.get("event") != EVIDENCE_EVENT:
            continue
        meter = str(event.get("meter"))
        scope = str(event.get("scope") or "")
        by_domain = event.get("energy_j") if isinstance(event.get("energy_j"), Mapping) else {}
        domains = {}
        for domain, value in by_domain.items():
            other, ours = _number(value), _ours_j(energy, str(domain))
            domains[str(domain)] = {"energy_j": other, "ours_j": ours,
                                    "disagreement_pct": _pct(other, ours)}  # fmt: skip
        values = [d["energy_j"] for d in domains.values() if d["energy_j"] is not None]
        total = math.fsum(values) if values else None
        co2 = _number(event.get("co2_g"))
        intensity = _number(event.get("intensity_g_per_kwh"))
        source = event.get("intensity_source")
        out[meter] = {
            "meter": meter, "method": event.get("method"), "scope": scope, "evidence": True,
            "energy_j": total, "disagreement_pct": _pct(total, _number(energy_j)),
            "domains": domains, "co2_g": co2, "co2_disagreement_pct": _pct(co2, _number(co2_g)),
            "intensity_g_per_kwh": intensity, "intensity_source": source,
            "intensity_disagreement_pct": _pct(
                intensity, _number((carbon or {}).get("intensity_g_per_kwh"))
            ),
            "region": event.get("region"), "duration_s": _number(event.get("duration_s")),
            "why": why_they_differ(meter, scope, intensity, source, carbon or {}),
        }  # fmt: skip
    return list(out.values())


def add_domain_evidence(
    energy: Mapping[str, dict[str, Any]], alternatives: Iterable[Mapping[str, Any]]
) -> None:
    """Put each other meter's per-domain figure among the domain's ``alternatives`` (marked
    ``evidence``, with its ``scope``), where greentrain has a figure of its own to set it
    beside; the domain's figure itself is left as it is."""
    for alt in alternatives:
        for domain, d in (alt.get("domains") or {}).items():
            figure = energy.get(domain)
            if not isinstance(figure, dict) or figure.get("energy_j") is None:
                continue
            if d.get("energy_j") is None:
                continue
            figure.setdefault("alternatives", []).append({
                "meter": alt["meter"], "method": alt.get("method"), "energy_j": d["energy_j"],
                "disagreement_pct": d.get("disagreement_pct"), "evidence": True,
                "scope": alt.get("scope"),
            })  # fmt: skip

"""THE best-figure ranking: several meters' figures for a domain -> one best figure, the rest kept
as alternatives. The same functions serve a live run (meter readings at finalize) and a stored
one (energy rows read back from the store), so both explain a missing figure in the same words.

Ranking: measurements before estimates; measurements by most direct method
(:data:`~greentrain.record.vocabulary.METHOD_PRIORITY`); estimates attributable to the job (a
process tree's CPU time) before models of the whole machine (CodeCarbon's TDP model); then
:data:`~greentrain.record.vocabulary.METER_ORDER`, then the meter's name. A meter that mixes
methods across devices (one GPU with a counter, one sampled) is ranked by its least direct one.

A domain's figure (the run object's ``energy[domain]``)::

    {"energy_j", "source": "meter:method", "estimated", "devices": {device: energy_j},
     "alternatives": [{"meter", "method", "energy_j", "disagreement_pct"}],
     "inputs": {"cpu_s", "w_per_core", "tdp_source", ...}}  # a model's inputs, when modelled

or ``{"energy_j": None, "reason": str}`` for a domain nobody measured. ``disagreement_pct`` is
``(alternative - best) / best * 100`` (None when the best figure is 0 J).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.record.readings import EnergyReading
from greentrain.record.vocabulary import (
    CUMULATIVE_DETAIL_KEYS,
    DOMAINS,
    ESTIMATE_INPUT_KEYS,
    METHOD_PRIORITY,
    figure_is_estimated,
    meter_rank,
    method_rank,
    reading_scope,
)


@dataclass
class Candidate:
    """One meter's figure for one domain, summed over that meter's devices (joules)."""

    meter: str
    method: str
    devices: dict[str, float] = field(default_factory=dict)
    estimated: bool = False
    scope: str = "process"  # "machine" as soon as one of its readings covers the machine
    inputs: dict[str, Any] = field(default_factory=dict)  # a model's inputs, summed over devices

    def add_inputs(self, detail: Mapping[str, Any]) -> None:
        """Keep ``detail``'s :data:`ESTIMATE_INPUT_KEYS`; cumulative counts add up."""
        for key in ESTIMATE_INPUT_KEYS:
            value = detail.get(key)
            if value is None or isinstance(value, bool):
                continue
            if key in CUMULATIVE_DETAIL_KEYS and isinstance(value, (int, float)):
                value = float(value) + float(self.inputs.get(key, 0.0))
            self.inputs[key] = value

    @property
    def energy_j(self) -> float:
        return sum(self.devices.values())

    def sort_key(self) -> tuple[int, int, str]:
        if self.estimated:  # after every measurement; the job's own estimate first
            rank = len(METHOD_PRIORITY) + (0 if self.scope == "process" else 1)
        else:
            rank = method_rank(self.method)
        return (rank, meter_rank(self.meter), self.meter)


Candidates = dict[str, list[Candidate]]
"""Domain -> every meter's candidate figure for it."""


def _collect(entries: Iterable[tuple[str, str, str, str, float, Mapping[str, Any]]]) -> Candidates:
    """(meter, domain, device, method, energy_j, detail) entries -> candidates per domain."""
    by_domain: dict[str, dict[str, Candidate]] = {}
    for meter, domain, device, method, energy_j, detail in entries:
        cand = by_domain.setdefault(domain, {}).get(meter)
        if cand is None:
            cand = by_domain[domain][meter] = Candidate(meter, method)
        if method_rank(method) > method_rank(cand.method):
            cand.method = method
        cand.devices[device] = cand.devices.get(device, 0.0) + float(energy_j)
        cand.estimated = cand.estimated or figure_is_estimated(method, detail)
        if figure_is_estimated(method, detail):
            cand.add_inputs(detail)
        if reading_scope(method, detail) == "machine":
            cand.scope = "machine"
    return {domain: list(cands.values()) for domain, cands in by_domain.items()}


def candidates_from_readings(
    readings_by_meter: Mapping[str, list[EnergyReading] | None],
) -> Candidates:
    """Candidates from meter readings (meter name -> readings; None or [] for no figure)."""
    return _collect(
        (meter, r.domain, r.device, r.method, r.energy_j, r.detail)
        for meter, readings in readings_by_meter.items()
        for r in readings or []
    )


def candidates_from_rows(rows: Iterable[Mapping[str, Any]]) -> Candidates:
    """Candidates from the store's energy rows (``detail`` as a dict or its JSON text)."""

    def detail(row: Mapping[str, Any]) -> Mapping[str, Any]:
        value = row.get("detail")
        return json.loads(value) if isinstance(value, str) else (value or {})

    return _collect(
        (r["meter"], r["domain"], r["device"], r["method"], r["energy_j"], detail(r)) for r in rows
    )


def disagreement_pct(value_j: float, best_j: float) -> float | None:
    """``(value - best) / best * 100``; None when the best figure is 0 J."""
    if best_j == 0:
        return None
    return (value_j - best_j) / best_j * 100.0


def no_figure_reason(domain: str, meters: Sequence[Mapping[str, Any]]) -> str:
    """Why no meter measured ``domain``: the meters that ran, then each problem meter's reason.

    ``meters`` are meter statuses (``{"meter", "available", "reason", "error"}``), as the
    harness records them.
    """
    problems = [
        f"{m['meter']}: {m.get('error') or m.get('reason') or ''}"
        for m in meters
        if not m.get("available") or m.get("error")
    ]
    used = [m["meter"] for m in meters if m.get("available") and not m.get("error")]
    text = f"no meter measured {domain}"
    if used:
        text += f" (used: {', '.join(used)})"
    if problems:
        text += "; " + "; ".join(problems)
    return text


def _figure(best: Candidate, others: Sequence[Candidate]) -> dict[str, Any]:
    best_j = best.energy_j
    return _with_inputs(
        best,
        {
            "energy_j": best_j,
            "source": f"{best.meter}:{best.method}",
            "estimated": best.estimated,
            "devices": dict(best.devices),
            "alternatives": [
                {
                    "meter": c.meter,
                    "method": c.method,
                    "energy_j": c.energy_j,
                    "disagreement_pct": disagreement_pct(c.energy_j, best_j),
                }
                for c in others
            ],
        },
    )


def _with_inputs(cand: Candidate, figure: dict[str, Any]) -> dict[str, Any]:
    """``figure`` with the model's ``inputs`` (CPU-seconds, W per core, ...) where it has any."""
    if cand.inputs:
        figure["inputs"] = dict(cand.inputs)
    return figure


def best_figures(
    candidates: Candidates, meters: Sequence[Mapping[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """One figure per domain of :data:`DOMAINS` (see the module docstring).

    ``meters``: the run's meter statuses, quoted by :func:`no_figure_reason` for a domain that
    no meter measured.
    """
    out: dict[str, dict[str, Any]] = {}
    for domain in DOMAINS:
        ranked = sorted(candidates.get(domain, []), key=Candidate.sort_key)
        if not ranked:
            out[domain] = {"energy_j": None, "reason": no_figure_reason(domain, meters)}
        else:
            out[domain] = _figure(ranked[0], ranked[1:])
    return out


def select_best(
    readings_by_meter: Mapping[str, list[EnergyReading] | None],
    meters: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """:func:`best_figures` of meter readings (the live path: finalize, power, baseline)."""
    return best_figures(candidates_from_readings(readings_by_meter), meters)


def window_figures(
    candidates: Candidates, run_sources: Mapping[str, str]
) -> dict[str, dict[str, Any] | None]:
    """A window's figure per domain, taken from the meter that gave the run's best figure.

    ``run_sources``: domain -> the meter of the run's best figure. Where that meter has no
    figure in the window, the window's own best candidate is used; None where nobody measured.
    """
    out: dict[str, dict[str, Any] | None] = {}
    for domain in DOMAINS:
        cands = {c.meter: c for c in candidates.get(domain, [])}
        if not cands:
            out[domain] = None
            continue
        chosen = cands.get(run_sources.get(domain, ""))
        if chosen is None:
            chosen = min(cands.values(), key=Candidate.sort_key)
        out[domain] = _with_inputs(chosen, {
            "energy_j": chosen.energy_j,
            "source": f"{chosen.meter}:{chosen.method}",
            "estimated": chosen.estimated,
            "devices": dict(chosen.devices),
        })  # fmt: skip
    return out


def total_j(figures: Mapping[str, Mapping[str, Any] | None]) -> float | None:
    """A run's (or window's) energy: the sum of its domains' best figures, joules; None when
    no domain has one (never 0 for "nothing measured")."""
    values = [
        float(f["energy_j"])
        for f in figures.values()
        if f is not None and isinstance(f.get("energy_j"), (int, float))
    ]
    return math.fsum(values) if values else None

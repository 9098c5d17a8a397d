"""Raw store rows of one run -> the run object readers get (``show --json``; README's table).

Pure functions, no I/O: the store reads the rows, this module decides what they mean. Energy per
domain comes from :mod:`greentrain.record.ranking`, the same ranking the harness used when the run
ended; kWh and CO2e from :mod:`greentrain.units`.

Credentials are masked here too (:mod:`greentrain.record.secrets`), so a record written before
the writer masked them, or by another tool, never shows one in ``show``, an export or the app.

Reading is tolerant: each stored column is parsed on its own, and one that is not valid JSON of
the expected shape (a store edited by hand, written by another tool, or damaged in part) reads
as its empty default, so one bad row never takes a listing down. Numbers used in arithmetic
(energies, carbon factors, baseline power) count only when they are finite numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from greentrain.record.accounting import accounting_alternatives
from greentrain.record.drops import client_drops
from greentrain.record.evidence import add_domain_evidence, evidence_alternatives
from greentrain.record.jsonable import loads
from greentrain.record.ranking import (
    best_figures,
    candidates_from_rows,
    no_figure_reason,
    window_figures,
)
from greentrain.record.secrets import redact, redact_all
from greentrain.record.split import apply as apply_split
from greentrain.record.vocabulary import DOMAINS, RESERVED_METRICS, RUN_SCOPE, key_domains
from greentrain.units import co2_g, joules_to_kwh


def _number(value: Any) -> float | None:
    """A finite number (never a bool or text), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def co2_of(energy_j: float | None, carbon: Any) -> float | None:
    """CO2e (g) of ``energy_j`` under the run's carbon factors; None without energy or an
    intensity, or when a factor is not a finite number >= 0. A PUE that is absent is 1.0; one
    that is null (the writer stores NaN and infinities as null) is unknown, not 1.0."""
    if energy_j is None or not isinstance(carbon, Mapping):
        return None
    intensity = _number(carbon.get("intensity_g_per_kwh"))
    pue = _number(carbon.get("pue", 1.0))
    if intensity is None or pue is None or intensity < 0 or pue < 0:
        return None
    co2 = co2_g(energy_j, intensity, pue)
    return co2 if math.isfinite(co2) else None


def meter_statuses(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The run object's ``meters`` list from the store's meter rows."""
    return [
        {
            "meter": m["meter"],
            "available": bool(m["available"]),
            "reason": m["reason"] or "",
            "fix": m["fix"] or "",
            "error": m["error"],
            "devices": loads(m["devices"], []),
        }
        for m in rows
    ]


def assemble_energy(
    rows: Sequence[Mapping[str, Any]],
    best: Mapping[str, Mapping[str, Any]] | None,
    meters: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The run object's ``energy`` dict.

    ``best`` is the per-domain choice the harness stored when the run ended; without it (a run
    still going, or one whose wrapper died) the figures are ranked here from the whole-run rows,
    by the same function.
    """
    ranked = best_figures(candidates_from_rows(rows), meters)
    if not best:
        return ranked
    out = {}
    for domain in DOMAINS:
        entry = best.get(domain)
        if not entry:
            out[domain] = {"energy_j": None, "reason": no_figure_reason(domain, meters)}
        elif not _valid_figure(entry):  # malformed stored choice: rank the rows instead
            out[domain] = ranked[domain]
        else:
            out[domain] = dict(entry)
            ranked_entry = ranked.get(domain) or {}
            same = ranked_entry.get("source") == entry.get("source")
            if "inputs" not in entry and same and "inputs" in ranked_entry:
                out[domain]["inputs"] = ranked_entry["inputs"]  # stored before figures had them
    return out


def _valid_figure(entry: Any) -> bool:
    if not isinstance(entry, Mapping):
        return False
    if entry.get("energy_j") is None:
        return isinstance(entry.get("reason", ""), str)
    return _number(entry.get("energy_j")) is not None and isinstance(entry.get("source"), str)


def _net_energy_j(
    energy_j: float | None,
    energy: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Any] | None,
    duration_s: float | None,
) -> float | None:
    """Energy less the idle baseline's power x duration over the domains that were measured."""
    duration_s = _number(duration_s)
    power = baseline.get("power_w") if isinstance(baseline, Mapping) else None
    if energy_j is None or not isinstance(power, Mapping) or duration_s is None:
        return None
    idle_j = sum(
        (_number(power.get(d)) or 0.0) * duration_s
        for d, e in energy.items()
        if e.get("energy_j") is not None
    )
    return energy_j - idle_j


def _window(w: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], sources: dict) -> dict:
    return {
        "name": w["name"],
        "index": w["idx"],
        "started_at": w["started_at"],
        "ended_at": w["ended_at"],
        "duration_s": w["duration_s"],
        "info": loads(w["info"], {}),
        "energy": window_figures(candidates_from_rows(rows), sources),
    }


def _metric(m: Mapping[str, Any]) -> dict[str, Any]:
    """One metrics entry; a logged name that collides with the entry's own fields (records
    written before the client renamed them) gets the client's ``user_`` prefix."""
    payload = loads(m["payload"], {})
    entry = {"step": m["step"], "window": m["window"], "time_s": m["time_s"]}
    for name, value in payload.items():
        entry[f"user_{name}" if name in RESERVED_METRICS else name] = value
    return entry


def assemble_run(
    row: Mapping[str, Any],
    energy: Sequence[Mapping[str, Any]],
    windows: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    meters: Sequence[Mapping[str, Any]],
    split: Mapping[tuple[str, str], dict] | None = None,
) -> dict[str, Any]:
    """Build the documented run object from the raw rows of one run (one row per table).

    ``split``: this run's share of machine-scope figures it shared with concurrent runs
    (:func:`greentrain.record.split.attribute`), applied to the run's energy.
    """
    meter_list = meter_statuses(meters)
    best = loads(row["best"], {}) or None
    run_rows = [e for e in energy if e["window_idx"] == RUN_SCOPE]
    energy_obj = assemble_energy(run_rows, best, meter_list)
    if split:
        apply_split(energy_obj, split)
    if best is None and not run_rows:
        why = (
            "run still going: energy is recorded when it ends"
            if row["status"] == "running"
            else "the wrapper process ended before the final meter reading"
        )
        energy_obj = {d: {"energy_j": None, "reason": why} for d in DOMAINS}
    election = loads(row.get("election"), {})
    _metered_elsewhere(energy_obj, election, row.get("group_id"))
    figures = [_number(d.get("energy_j")) for d in energy_obj.values()]
    figures = [f for f in figures if f is not None]
    energy_j = sum(figures) if figures else None
    energy_kwh = joules_to_kwh(energy_j) if energy_j is not None else None
    carbon = loads(row["carbon"], {}) or None
    co2 = co2_of(energy_j, carbon)
    baseline = loads(row["baseline"], {}) or None
    sources = {
        d: e["source"].split(":", 1)[0]
        for d, e in energy_obj.items()
        if isinstance(e.get("source"), str)
    }
    evidence = evidence_alternatives(
        loads(row.get("events"), []), energy_obj, energy_j, co2, carbon
    )
    add_domain_evidence(energy_obj, evidence)  # beside each domain's figure, never in it
    per_window: dict[int, list[dict[str, Any]]] = {}  # one pass: a burst has 10^4 windows
    for e in energy:
        per_window.setdefault(e["window_idx"], []).append(e)
    return {
        "id": row["id"],
        "name": redact(row["name"]),
        "status": row["status"],
        "exit_code": row["exit_code"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "duration_s": row["duration_s"],
        "tags": redact_all(loads(row["tags"], {})),
        "config": redact_all(loads(row["config"], {})),
        "command": redact_all(loads(row["command"], [])),
        "cwd": redact(row["cwd"]),
        "git": loads(row["git"], {}),
        "env": loads(row["env"], {}),
        "host": row["host"],
        "energy": energy_obj,
        "energy_j": energy_j,
        "energy_kwh": energy_kwh,
        "co2_g": co2,
        "carbon": carbon,
        "meters": meter_list,
        "windows": [_window(w, per_window.get(w["idx"], []), sources) for w in windows],
        "metrics": [_metric(m) for m in metrics],
        "baseline": baseline,
        "net_energy_j": _net_energy_j(energy_j, energy_obj, baseline, row["duration_s"]),
        "events": redact_all(loads(row.get("events"), [])),
        "client_drops": client_drops(loads(row.get("events"), [])),
        "energy_alternatives": accounting_alternatives(loads(row.get("events"), []), energy_j)
        + evidence,
        "group": row.get("group_id"),
        "nodes": [],
    }


def _metered_elsewhere(energy: dict[str, dict], election: Any, group: Any) -> None:
    """A domain without a figure whose devices another wrapper of the run's group metered says
    so (the group's record counts them once, there) instead of "no meter measured"."""
    elsewhere = election.get("elsewhere") if isinstance(election, Mapping) else None
    if not isinstance(elsewhere, Mapping):
        return
    for key, holder in elsewhere.items():
        for domain in key_domains(str(key)):
            figure = energy.get(domain)
            if isinstance(figure, dict) and figure.get("energy_j") is None:
                figure["reason"] = (
                    f"{domain} metered by run {holder} of group {group} on this host "
                    "(one meter per device; counted once, in that run)"
                )

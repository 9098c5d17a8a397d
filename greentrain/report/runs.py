"""Figures of one run record (the run object of ``greentrain show --json``).

* **Accuracy** is the *final* top-1 test accuracy (metric ``final_test_acc``, else the last
  ``test_acc`` logged), a fraction in 0..1. The best epoch is not used: picking the best epoch on
  the test set is optimistic. DDPM runs report **FID** (``fid``, else ``fid_proxy``), where lower
  is better.
* **Backward FLOPs** are the analytic backward FLOPs per training iteration
  (``backward_flops_per_iter``), averaged over a run's epochs (a scheduled drop rate changes
  them from epoch to epoch).
* **Estimated**: a run is estimated if any energy domain's best figure is an estimate.

Energy in kWh at this edge (:mod:`greentrain.units`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from greentrain.report.stats import missing
from greentrain.units import joules_to_kwh


def last_metric(run: dict, name: str) -> float | None:
    """The last non-null value of metric ``name`` in ``run["metrics"]``, else ``None``."""
    for rec in reversed(run.get("metrics") or []):
        value = rec.get(name)
        if not missing(value):
            return value
    return None


def final_accuracy(run: dict) -> float | None:
    """Final top-1 test accuracy (fraction): ``final_test_acc``, else the last ``test_acc``."""
    value = last_metric(run, "final_test_acc")
    return value if value is not None else last_metric(run, "test_acc")


def final_fid(run: dict) -> float | None:
    """Final FID (lower is better): ``fid``, else ``fid_proxy``; ``None`` if neither."""
    value = last_metric(run, "fid")
    return value if value is not None else last_metric(run, "fid_proxy")


def run_energy_kwh(run: dict) -> float | None:
    """The run's total energy in kWh (sum of best figures of all domains) or ``None``."""
    if run.get("energy_kwh") is not None:
        return float(run["energy_kwh"])
    if run.get("energy_j") is not None:
        return joules_to_kwh(float(run["energy_j"]))
    return None


def run_is_estimated(run: dict) -> bool:
    """True if any energy domain's best figure is an estimate (not a measurement)."""
    for dom in (run.get("energy") or {}).values():
        if isinstance(dom, dict) and dom.get("estimated"):
            return True
    return False


def energy_sources(run: dict) -> dict[str, str]:
    """``{domain: "<meter>:<method>"}`` for measured domains, ``{domain: "unavailable: why"}``."""
    out: dict[str, str] = {}
    for domain, dom in (run.get("energy") or {}).items():
        if not isinstance(dom, dict):
            continue
        if dom.get("energy_j") is None:
            out[domain] = f"unavailable: {dom.get('reason') or 'no reason recorded'}"
        else:
            out[domain] = str(dom.get("source") or "unknown")
    return out


def mean_backward_flops(run: dict) -> float | None:
    """Mean analytic backward FLOPs per iteration over the run's logged epochs."""
    vals = [
        float(r["backward_flops_per_iter"])
        for r in run.get("metrics") or []
        if r.get("backward_flops_per_iter") is not None
    ]
    return math.fsum(vals) / len(vals) if vals else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def window_energy_j(window: dict) -> float | None:
    """Sum of the measured domain energies of one window (J); ``None`` if none was measured."""
    vals = [
        float(d["energy_j"])
        for d in (window.get("energy") or {}).values()
        if isinstance(d, dict) and d.get("energy_j") is not None
    ]
    return math.fsum(vals) if vals else None


def epoch_windows(run: dict) -> list[dict]:
    """The run's per-epoch windows (name starting with ``epoch``), in index order."""
    wins = [w for w in run.get("windows") or [] if str(w.get("name", "")).startswith("epoch")]
    return sorted(wins, key=lambda w: (w.get("index") is None, w.get("index") or 0))


def epoch_energies_kwh(run: dict) -> list[float | None]:
    """Energy of each epoch window in kWh (``None`` where that window was not measured)."""
    out = []
    for w in epoch_windows(run):
        e = window_energy_j(w)
        out.append(None if e is None else joules_to_kwh(e))
    return out


def accuracy_curve(run: dict, metric: str = "test_acc") -> list[dict]:
    """Per-epoch records: ``[{"epoch", "time_s", metric, "cum_energy_kwh"}]`` in time order.

    ``cum_energy_kwh`` is the energy of every window that had *started* by the time the record
    was logged (``run started_at + time_s``): the epoch being evaluated and its eval window
    count, later epochs do not. Windows nested inside another window are not counted again.
    ``None`` if the run has no measured windows.
    """
    start = _parse_time(run.get("started_at"))
    spans = []  # (start_s, end_s, energy_j) of measured windows, relative to the run's start
    for w in run.get("windows") or []:
        ws, we = _parse_time(w.get("started_at")), _parse_time(w.get("ended_at"))
        e = window_energy_j(w)
        if ws is not None and start is not None and e is not None:
            end = math.inf if we is None else (we - start).total_seconds()
            spans.append(((ws - start).total_seconds(), end, e))
    # Windows may nest (an "eval" inside an "epoch"): count only outermost ones, never twice.
    windows = sorted(
        (s0, e)
        for i, (s0, s1, e) in enumerate(spans)
        if not any(
            j != i and o0 <= s0 and s1 <= o1 and (o0, o1) != (s0, s1)
            for j, (o0, o1, _) in enumerate(spans)
        )
    )
    recs = [r for r in run.get("metrics") or [] if r.get(metric) is not None]
    recs.sort(key=lambda r: (r.get("time_s") is None, r.get("time_s") or 0.0))
    out = []
    for r in recs:
        cum = None
        t = r.get("time_s")
        if windows and t is not None:
            cum = joules_to_kwh(math.fsum(e for ws, e in windows if ws <= float(t) + 1e-9))
        out.append(
            {
                "epoch": r.get("epoch"),
                "time_s": t,
                metric: float(r[metric]),
                "cum_energy_kwh": cum,
            }
        )
    return out


def energy_to_accuracy(run: dict, target: float, metric: str = "test_acc") -> float | None:
    """kWh spent until the run first reached ``target`` (fraction) of ``metric``.

    Cumulative window energy up to and including the epoch whose evaluation first reached the
    target (see :func:`accuracy_curve`). ``None`` if the run never reached it or its windows
    were not metered.
    """
    for rec in accuracy_curve(run, metric):
        if rec[metric] >= target:
            return rec["cum_energy_kwh"]
    return None


def comparison_row(run: dict) -> dict[str, Any]:
    """One row of a dense-vs-ssProp comparison (``greentrain demo``); None where not measured."""
    per_epoch = [m for m in run.get("metrics") or [] if m.get("epoch") is not None]
    acc = final_accuracy(run)
    kwh = run_energy_kwh(run)
    sources = {d.get("source") for d in (run.get("energy") or {}).values() if isinstance(d, dict)}
    return {
        "name": run.get("name"),
        "id": run.get("id"),
        "mode": (run.get("tags") or {}).get("mode", ""),
        "test_acc": acc,
        "best_test_acc": last_metric(run, "best_test_acc"),
        "duration_s": run.get("duration_s"),
        "energy_kwh": kwh,
        "energy_sources": sorted(s for s in sources if s),
        "estimated": run_is_estimated(run),
        "co2_g": run.get("co2_g"),
        "backward_flops_per_iter": mean_backward_flops(run),
        "acc_per_kwh": acc / kwh if acc is not None and kwh else None,
        "mean_drop_rate": (
            math.fsum(m.get("drop_rate", 0.0) for m in per_epoch) / len(per_epoch)
            if per_epoch
            else None
        ),
    }

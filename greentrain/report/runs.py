"""Figures of one run record (the run object of ``greentrain show --json``).

* **Accuracy** is the *final* top-1 test accuracy (metric ``final_test_acc``, else the last
  ``test_acc`` logged), a fraction in 0..1. The best epoch is not used: picking the best epoch on
  the test set is optimistic. DDPM runs report **FID** (``fid``, else ``fid_proxy``), where lower
  is better.
* **Backward FLOPs** are the analytic backward FLOPs per training iteration
  (``backward_flops_per_iter``), averaged over a run's epochs (a scheduled drop rate changes
  them from epoch to epoch).
* **Estimated**: a run is estimated if any energy domain's best figure is an estimate.

Every value is read through :class:`~greentrain.report.reading.RunReader`: a value of the wrong
type, non-finite or (for energies, times, FLOPs) negative is ignored, never used as 0, and
noted in ``issues`` when the caller passes a list.

Energy in kWh at this edge (:mod:`greentrain.units`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from greentrain.report.reading import Issue, RunReader
from greentrain.report.stats import safe_sum
from greentrain.units import joules_to_kwh


def last_metric(
    run: dict, name: str, issues: list[Issue] | None = None, nonnegative: bool = False
) -> float | None:
    """The last non-null value of metric ``name`` in ``run["metrics"]``, else ``None``.

    An invalid last value gives ``None`` (noted), not an earlier epoch's value.
    """
    r = RunReader(run, issues)
    for i, rec in reversed(r.metrics()):
        value = rec.get(name)
        if value is not None:
            return r.number(value, f"metrics[{i}].{name}", nonnegative)
    return None


def _first_present(run: dict, names: tuple[str, str], issues: list[Issue] | None) -> float | None:
    """The last value of metric ``names[0]`` if one was logged, else of ``names[1]``."""
    logged = {n for _, rec in RunReader(run).metrics() for n in names if rec.get(n) is not None}
    for name in names:
        if name in logged:
            return last_metric(run, name, issues)
    return None


# The accuracy metrics runs log, in the order a report looks for them: greentrain's jobs log
# test_acc, Lightning scripts val_acc, the Hugging Face Trainer eval_accuracy.
ACCURACY_METRICS: tuple[str, ...] = ("test_acc", "val_acc", "eval_accuracy")


def accuracy_metric(run: dict) -> str | None:
    """The first of :data:`ACCURACY_METRICS` the run logged (itself or as ``final_<name>``)."""
    logged = {n for _, rec in RunReader(run).metrics() for n, v in rec.items() if v is not None}
    return next((m for m in ACCURACY_METRICS if m in logged or f"final_{m}" in logged), None)


def final_accuracy(
    run: dict, issues: list[Issue] | None = None, metric: str | None = None
) -> float | None:
    """Final accuracy (fraction) of ``metric`` (default: :func:`accuracy_metric`):
    ``final_<metric>``, else its last value."""
    metric = metric or accuracy_metric(run)
    if metric is None:
        return None
    return _first_present(run, (f"final_{metric}", metric), issues)


def final_fid(run: dict, issues: list[Issue] | None = None) -> float | None:
    """Final FID (lower is better): ``fid``, else ``fid_proxy``; ``None`` if neither."""
    return _first_present(run, ("fid", "fid_proxy"), issues)


def run_energy_kwh(run: dict, issues: list[Issue] | None = None) -> float | None:
    """The run's total energy in kWh (sum of best figures of all domains) or ``None``."""
    r = RunReader(run, issues)
    if r.run.get("energy_kwh") is not None:
        return r.number(r.run["energy_kwh"], "energy_kwh", nonnegative=True)
    energy_j = r.number(r.run.get("energy_j"), "energy_j", nonnegative=True)
    return None if energy_j is None else joules_to_kwh(energy_j)


def carbon_factors(
    run: dict, issues: list[Issue] | None = None
) -> tuple[float | None, float | None, bool]:
    """``(intensity gCO2e/kWh, PUE, readable)`` of ``run["carbon"]``.

    A missing PUE is 1.0 (energy as metered), as in the record's own CO2e; a PUE must be a
    finite number >= 1. ``readable`` is False when either factor is recorded but unusable
    (noted), which makes the run's CO2e unusable too (:func:`run_co2_g`).
    """
    r = RunReader(run, issues)
    c = r.mapping(r.run.get("carbon"), "carbon")
    raw_i, raw_p = c.get("intensity_g_per_kwh"), c.get("pue")
    intensity = r.number(raw_i, "carbon.intensity_g_per_kwh", nonnegative=True)
    pue = 1.0 if raw_p is None else r.number(raw_p, "carbon.pue", nonnegative=True)
    if pue is not None and pue < 1.0:
        r.flag("carbon.pue", raw_p, "ignored", "below 1, impossible for a PUE")
        pue = None
    readable = (intensity is not None or raw_i is None) and pue is not None
    return intensity, pue, readable


def run_co2_g(run: dict, issues: list[Issue] | None = None) -> float | None:
    """The run's CO2e (g), or ``None`` if not recorded, invalid, or computed from a carbon
    factor that is unusable (:func:`carbon_factors`)."""
    r = RunReader(run, issues)
    co2 = r.number(r.run.get("co2_g"), "co2_g", nonnegative=True)
    readable = carbon_factors(run, issues)[2]  # noted even when co2_g is itself unusable
    if co2 is not None and not readable:
        r.flag("co2_g", r.run.get("co2_g"), "ignored", "computed from an unusable carbon factor")
        return None
    return co2


def run_is_estimated(run: dict, issues: list[Issue] | None = None) -> bool:
    """True if any energy domain's best figure is an estimate (not a measurement)."""
    r = RunReader(run, issues)
    flags = [
        r.flag_true(dom.get("estimated"), f"energy.{domain}.estimated")
        for domain, dom in r.energy().items()
    ]
    return any(flags)


def domain_energy_j(
    run: dict, domain: str, figure: dict, issues: list[Issue] | None = None
) -> float | None:
    """The energy (J) of one domain's figure of ``run["energy"]``; ``None`` if unmeasured or
    invalid (noted)."""
    return RunReader(run, issues).number(
        figure.get("energy_j"), f"energy.{domain}.energy_j", nonnegative=True
    )


def energy_sources(run: dict, issues: list[Issue] | None = None) -> dict[str, str]:
    """``{domain: "<meter>:<method>"}`` for measured domains, ``{domain: "unavailable: why"}``,
    and ``{domain: "invalid figure"}`` where the figure could not be read."""
    r = RunReader(run, issues)
    out: dict[str, str] = {}
    for domain, dom in r.energy().items():
        raw = dom.get("energy_j")
        if raw is None:
            reason = r.text(dom.get("reason"), f"energy.{domain}.reason")
            out[domain] = f"unavailable: {reason or 'no reason recorded'}"
        elif domain_energy_j(run, domain, dom, issues) is None:
            out[domain] = "invalid figure"
        else:
            out[domain] = r.text(dom.get("source"), f"energy.{domain}.source") or "unknown"
    return out


def mean_backward_flops(run: dict, issues: list[Issue] | None = None) -> float | None:
    """Mean analytic backward FLOPs per iteration over the run's logged epochs (invalid values
    left out, noted)."""
    r = RunReader(run, issues)
    vals = [
        r.number(rec["backward_flops_per_iter"], f"metrics[{i}].backward_flops_per_iter", True)
        for i, rec in r.metrics()
        if rec.get("backward_flops_per_iter") is not None
    ]
    vals = [v for v in vals if v is not None]
    return safe_sum(vals) / len(vals) if vals else None


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp (``Z`` allowed; no zone means UTC); ``None`` if not one."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def recorded_forecasts(run: dict, issues: list[Issue] | None = None) -> list[dict]:
    """The run's live energy forecasts (its ``forecast`` events), oldest first: each with
    ``t_s`` (seconds since the run started), ``epochs_done``, ``epochs_total`` and
    ``total_kwh``, ``low_kwh``, ``high_kwh`` (None without an interval). Unreadable values
    are flagged in ``issues`` and the forecast left out."""
    reader = RunReader(run, issues)
    started = parse_time(run.get("started_at"))
    out = []
    for i, event in enumerate(run.get("events") or []):
        if not isinstance(event, Mapping) or event.get("event") != "forecast":
            continue
        field = f"events[{i}]"
        total = reader.number(event.get("total_j"), f"{field}.total_j", nonnegative=True)
        t = reader.number(event.get("t"), f"{field}.t")
        if total is None or t is None:
            continue
        low = reader.number(event.get("low_j"), f"{field}.low_j", nonnegative=True)
        high = reader.number(event.get("high_j"), f"{field}.high_j", nonnegative=True)
        out.append({
            "t_s": t - started.timestamp() if started is not None else None,
            "epochs_done": reader.integer(event.get("epochs_done"), f"{field}.epochs_done"),
            "epochs_total": reader.integer(event.get("epochs_total"), f"{field}.epochs_total"),
            "total_kwh": joules_to_kwh(total),
            "low_kwh": None if low is None or high is None else joules_to_kwh(low),
            "high_kwh": None if low is None or high is None else joules_to_kwh(high),
        })  # fmt: skip
    return sorted(out, key=lambda f: (f["t_s"] is None, f["t_s"] or 0.0))


def comparison_row(run: dict, issues: list[Issue] | None = None) -> dict[str, Any]:
    """One row of a dense-vs-ssProp comparison (``greentrain demo``); None where not measured."""
    r = RunReader(run, issues)
    per_epoch = [(i, m) for i, m in r.metrics() if m.get("epoch") is not None]
    rates = [r.number(m.get("drop_rate", 0.0), f"metrics[{i}].drop_rate") for i, m in per_epoch]
    rates = [x for x in rates if x is not None]
    acc = final_accuracy(run, issues)
    kwh = run_energy_kwh(run, issues)
    sources = {
        r.text(d.get("source"), f"energy.{domain}.source") for domain, d in r.energy().items()
    }
    tags = r.mapping(r.run.get("tags"), "tags")
    return {
        "name": r.run.get("name"),
        "id": r.run.get("id"),
        "mode": tags.get("mode", ""),
        "test_acc": acc,
        "best_test_acc": last_metric(run, "best_test_acc", issues),
        "duration_s": r.number(r.run.get("duration_s"), "duration_s", nonnegative=True),
        "energy_kwh": kwh,
        "energy_sources": sorted(s for s in sources if s),
        "estimated": run_is_estimated(run, issues),
        "co2_g": run_co2_g(run, issues),
        "backward_flops_per_iter": mean_backward_flops(run, issues),
        "acc_per_kwh": acc / kwh if acc is not None and kwh else None,
        "mean_drop_rate": safe_sum(rates) / len(rates) if rates else None,
    }

"""A run's figures over its windows: energy per window and per epoch, the accuracy-vs-energy
curve and the energy to reach an accuracy (read through
:class:`~greentrain.report.reading.RunReader`, as :mod:`greentrain.report.runs`: an invalid value
is left out and noted, never used as 0). Windows nested in another window count once.

Energy in kWh at this edge (:mod:`greentrain.units`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from greentrain.report.reading import Issue, RunReader
from greentrain.report.runs import parse_time
from greentrain.report.stats import safe_sum
from greentrain.units import joules_to_kwh


def _time(r: RunReader, value: object, field: str) -> datetime | None:
    t = parse_time(value)
    if t is None and value is not None:
        r.flag(field, value, "ignored", "not an ISO-8601 time")
    return t


def window_energy_j(
    window: dict, issues: list[Issue] | None = None, run: dict | None = None, field: str = "window"
) -> float | None:
    """Sum of the measured domain energies of one window (J); ``None`` if none was measured.

    Invalid figures are left out (noted against ``run`` when ``issues`` is given).
    """
    r = RunReader(run if run is not None else {}, issues)
    energy = r.mapping(window.get("energy") if isinstance(window, Mapping) else None, field)
    vals = []
    for domain, d in energy.items():
        figure = r.mapping(d, f"{field}.energy.{domain}")
        v = r.number(figure.get("energy_j"), f"{field}.energy.{domain}.energy_j", True)
        if v is not None:
            vals.append(v)
    return safe_sum(vals) if vals else None


def _index(window: dict) -> tuple[bool, int]:
    idx = window.get("index")
    ok = isinstance(idx, int) and not isinstance(idx, bool)
    return (not ok, idx if ok else 0)


def epoch_windows(run: dict, issues: list[Issue] | None = None) -> list[dict]:
    """The run's per-epoch windows (name starting with ``epoch``), in index order."""
    wins = [
        w
        for _, w in RunReader(run, issues).windows()
        if isinstance(w.get("name"), str) and w["name"].startswith("epoch")
    ]
    return sorted(wins, key=_index)


def epoch_energies_kwh(run: dict, issues: list[Issue] | None = None) -> list[float | None]:
    """Energy of each epoch window in kWh (``None`` where that window was not measured)."""
    out = []
    for w in epoch_windows(run, issues):
        e = window_energy_j(w, issues, run, f"windows[{w.get('index')}]")
        out.append(None if e is None else joules_to_kwh(e))
    return out


def outermost(spans: list[tuple[float, float, float]]) -> set[tuple[float, float]]:
    """The ``(start, end)`` intervals of ``spans`` not nested in a *different* interval.

    Windows may nest (an "eval" inside an "epoch"); only outermost ones are counted, never
    twice. Two windows with the same interval do not hide each other. One sweep over the
    distinct intervals by start, longest first: an interval is nested exactly when an earlier
    one reaches at least as far (O(n log n), so a run with many windows cannot stall a page).
    """
    out, reach = set(), -math.inf
    for start, end in sorted({(s0, s1) for s0, s1, _ in spans}, key=lambda i: (i[0], -i[1])):
        if reach < end:
            out.add((start, end))
        reach = max(reach, end)
    return out


def accuracy_curve(
    run: dict, metric: str = "test_acc", issues: list[Issue] | None = None
) -> list[dict]:
    """Per-epoch records: ``[{"epoch", "time_s", metric, "cum_energy_kwh"}]`` in time order.

    ``cum_energy_kwh`` is the energy of every window that had *started* by the time the record
    was logged (``run started_at + time_s``): the epoch being evaluated and its eval window
    count, later epochs do not. Windows nested inside another window are not counted again.
    ``None`` if the run has no measured windows. Records whose value is invalid are left out.
    """
    r = RunReader(run, issues)
    start = _time(r, r.run.get("started_at"), "started_at")
    spans = []  # (start_s, end_s, energy_j) of measured windows, relative to the run's start
    for i, w in r.windows():
        ws = _time(r, w.get("started_at"), f"windows[{i}].started_at")
        we = _time(r, w.get("ended_at"), f"windows[{i}].ended_at")
        e = window_energy_j(w, issues, run, f"windows[{i}]")
        if ws is not None and start is not None and e is not None:
            end = math.inf if we is None else (we - start).total_seconds()
            spans.append(((ws - start).total_seconds(), end, e))
    outer = outermost(spans)
    windows = sorted((s0, e) for s0, s1, e in spans if (s0, s1) in outer)
    recs = []
    for i, rec in r.metrics():
        if rec.get(metric) is None:
            continue
        value = r.number(rec[metric], f"metrics[{i}].{metric}")
        t = r.number(rec.get("time_s"), f"metrics[{i}].time_s")
        if value is not None:
            recs.append((t, rec.get("epoch"), value))
    recs.sort(key=lambda x: (x[0] is None, x[0] or 0.0))
    out = []
    for t, epoch, value in recs:
        cum = None
        if windows and t is not None:
            cum = joules_to_kwh(safe_sum(e for ws, e in windows if ws <= t + 1e-9))
        out.append({"epoch": epoch, "time_s": t, metric: value, "cum_energy_kwh": cum})
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

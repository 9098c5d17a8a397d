"""The forecast back-test's Markdown beyond the per-fraction summary: coverage per kind of job
and per number of sibling runs, a whole report, and forecasts with their siblings' prior set
beside the same forecasts without it (``benchmarks/forecast_backtest.py`` prints them)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from greentrain.report.backtest import BacktestRow, summary_table


def by_siblings(rows: Sequence[BacktestRow]) -> list[str]:
    """Per number of sibling runs (0, 1, 2-4, 5+) and fraction: coverage and median width."""
    groups = {"none": (0, 0), "1": (1, 1), "2-4": (2, 4), "5+": (5, 10**9)}
    fractions = sorted({r.fraction for r in rows})
    lines = ["| siblings | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]  # fmt: skip
    for label, (low, high) in groups.items():
        these = [r for r in rows if low <= r.siblings <= high]
        if not these:
            continue
        cells = []
        for f in fractions:
            judged = [r for r in these if r.fraction == f and r.covered is not None]
            if not judged:
                cells.append("-")
                continue
            width = statistics.median(r.width for r in judged)
            cells.append(f"{sum(r.covered for r in judged)}/{len(judged)}, width {width:.1%}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def report(rows: Sequence[BacktestRow], title: str) -> str:
    """Markdown: the summary, coverage per kind of job, the worst error and the misses."""
    worst = max(rows, key=lambda r: abs(r.error))
    misses = sum(r.covered is False for r in rows)
    judged = sum(r.covered is not None for r in rows)
    return "\n".join([
        f"**{title}**", "", *summary_table(rows), "",
        "Intervals that held the actual total, per kind of job:", "", *by_kind(rows), "",
        f"Worst error: {worst.error:+.1%} ({worst.name}, after {worst.fraction:.0%}).",
        f"Intervals that missed: {misses} of {judged}.", "",
    ])  # fmt: skip


def by_kind(rows: Sequence[BacktestRow]) -> list[str]:
    """Coverage per kind of job and fraction: ``held/with interval``."""
    fractions = sorted({r.fraction for r in rows})
    lines = ["| job | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]  # fmt: skip
    for kind in dict.fromkeys(r.job for r in rows):
        cells = []
        for f in fractions:
            judged = [r.covered for r in rows if r.job == kind and r.fraction == f]
            judged = [c for c in judged if c is not None]
            cells.append(f"{sum(judged)}/{len(judged)}" if judged else "-")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return lines


def sibling_comparison(
    without: Sequence[BacktestRow], with_prior: Sequence[BacktestRow], source: str
) -> str:
    """Markdown: the forecasts of the runs that had sibling runs, with their prior and (the same
    forecasts) without, and the split by number of siblings."""
    had = {r.run for r in with_prior if r.siblings}
    if not had:
        return f"{source}: no run had a sibling run finished before it.\n"
    paired = [r for r in with_prior if r.run in had]
    alone = [r for r in without if r.run in had]
    return "\n".join([
        report(paired, f"{source}, the {len(had)} runs with sibling runs: {len(paired)} "
               "forecasts with the siblings' prior"),
        "The same forecasts without the siblings' prior:", "", *summary_table(alone), "",
        "Per number of sibling runs (held/with interval, median width):", "",
        *by_siblings(list(with_prior)), "",
    ])  # fmt: skip

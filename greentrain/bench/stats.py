"""Robust summaries of repeated timings: median with its spread, and paired ratios.

The one definition of a reported ratio (:func:`headline`): the median of the per-round paired
ratios for a variant that does the same work every step; the *mean* of them for a schedule,
whose steps alternate between phases (the median of a two-valued set is one of the two; the
mean is the schedule's time in units of dense, what a whole run's total converges to).

Ratios are *paired*: in round ``r`` every variant ran once, so ``x[r] / base[r]`` compares two
measurements taken seconds apart under the same machine load. The reported ratio is the median
of these per-round ratios (robust to a noisy round hitting one variant), with its p10-p90
spread; the ratio of the two medians is reported alongside for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def quantiles(values: Sequence[float]) -> dict | None:
    """Median, mean, p10/p90 and quartiles of ``values`` (same unit); ``None`` if empty."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    arr = np.asarray(vals, dtype=float)
    p10, q25, med, q75, p90 = np.quantile(arr, [0.10, 0.25, 0.50, 0.75, 0.90])
    return {
        "median": float(med),
        "mean": float(arr.mean()),
        "p10": float(p10),
        "p90": float(p90),
        "q25": float(q25),
        "q75": float(q75),
        "n": int(arr.size),
    }


def paired_ratio(values: Sequence[float], base: Sequence[float]) -> dict | None:
    """Median (and p10/p90) of per-round ratios ``values[r] / base[r]``; ``None`` if undefined.

    Also returns ``ratio_of_medians`` and ``ratio_of_means`` (the latter is what a whole run's
    total time or energy ratio converges to).
    """
    pairs = [
        (float(v), float(b))
        for v, b in zip(values, base, strict=False)
        if v is not None and b is not None and math.isfinite(v) and math.isfinite(b) and b > 0
    ]
    if not pairs:
        return None
    ratios = [v / b for v, b in pairs]
    stats = quantiles(ratios)
    assert stats is not None
    num = [v for v, _ in pairs]
    den = [b for _, b in pairs]
    med_den = float(np.median(den))
    return {
        "median": stats["median"],
        "mean": stats["mean"],
        "p10": stats["p10"],
        "p90": stats["p90"],
        "ratio_of_medians": float(np.median(num)) / med_den if med_den > 0 else None,
        "ratio_of_means": float(np.mean(num)) / float(np.mean(den)) if np.mean(den) > 0 else None,
        "n": stats["n"],
    }


def headline(ratio: dict | None, schedule: bool = False) -> float | None:
    """The ratio a table reports for one variant (see the module docstring)."""
    if not ratio:
        return None
    return ratio["mean"] if schedule else ratio["median"]

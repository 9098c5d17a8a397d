"""Robust summaries of repeated timings: median with its spread, and paired ratios.

The one definition of a reported ratio (:func:`headline`): the median of the per-round paired
ratios for a variant that does the same work every step; the *mean* of them for a schedule,
whose steps alternate between phases (the median of a two-valued set is one of the two; the
mean is the schedule's time in units of dense, what a whole run's total converges to).

Ratios are *paired*: in round ``r`` every variant ran once, so ``x[r] / base[r]`` compares two
measurements taken seconds apart under the same machine load. The reported ratio is the median
of these per-round ratios (robust to a noisy round hitting one variant), with its p10-p90
spread; the ratio of the two medians is reported alongside for comparison.

Every paired ratio keeps its per-round ratios (``per_round``, so anyone can recompute it) and a
95% confidence interval of its headline statistic (:func:`headline_interval`):

* for the median, the distribution-free interval between two order statistics of the per-round
  ratios (:func:`median_interval`; its coverage follows from the binomial distribution, no
  assumption on the ratios' distribution; with few rounds it is ``[min, max]`` and its actual,
  lower coverage is stated);
* for the mean (a schedule), Student's t interval over the per-round ratios
  (:func:`mean_interval`).

A verdict ("saves", "costs") is drawn only when that interval excludes 1
(:mod:`greentrain.report.where`); an interval that spans 1 is "no difference detected".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95  # confidence of every reported interval


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
        "per_round": ratios,
        "interval": median_interval(ratios),
        "mean_interval": mean_interval(ratios),
    }


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_interval(values: Sequence[float], level: float = LEVEL) -> dict | None:
    """Distribution-free confidence interval of the median of ``values``.

    The interval ``[x_(k), x_(n+1-k)]`` (order statistics, 1-based) covers the true median with
    probability ``1 - 2 P(Binomial(n, 1/2) <= k - 1)``; ``k`` is the largest for which that is at
    least ``level``. With too few values for ``level`` (n < 6 for 95%) the interval is
    ``[min, max]`` and ``level`` in the result is its actual, lower coverage. ``None`` for fewer
    than 2 values. Same unit as ``values``.
    """
    vals = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(vals)
    if n < 2:
        return None
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * _binomial_cdf(k, n) >= level:
        k += 1
    coverage = 1 - 2 * _binomial_cdf(k - 1, n)
    return {
        "low": vals[k - 1],
        "high": vals[n - k],
        "level": coverage,
        "method": "order statistics (distribution-free)",
    }


def mean_interval(values: Sequence[float], level: float = LEVEL) -> dict | None:
    """Student's t confidence interval of the mean of ``values``; ``None`` for fewer than 2."""
    vals = np.asarray([float(v) for v in values if v is not None and math.isfinite(v)])
    n = vals.size
    if n < 2:
        return None
    from scipy.stats import t  # lazy: scipy is slow to import

    half = float(t.ppf(0.5 + level / 2, n - 1)) * float(vals.std(ddof=1)) / math.sqrt(n)
    mean = float(vals.mean())
    return {"low": mean - half, "high": mean + half, "level": level, "method": "Student t"}


def headline_interval(ratio: dict | None, schedule: bool = False) -> dict | None:
    """The interval of the ratio :func:`headline` reports (the mean's for a schedule); ``None``
    for a result saved before intervals were kept."""
    if not ratio:
        return None
    return ratio.get("mean_interval" if schedule else "interval")


def headline(ratio: dict | None, schedule: bool = False) -> float | None:
    """The ratio a table reports for one variant (see the module docstring)."""
    if not ratio:
        return None
    return ratio["mean"] if schedule else ratio["median"]

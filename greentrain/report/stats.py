"""Pooling repeated measurements: mean, sample standard deviation and a 95% t-interval.

With one value the standard deviation and the interval are undefined: they are ``None`` and the
note says :data:`CI_UNDEFINED_NOTE` -- never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

CI_UNDEFINED_NOTE = "n=1: CI undefined"


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and 95% CI half-width of ``n`` values; ``None`` where undefined."""

    n: int
    mean: float | None
    std: float | None
    ci95: float | None
    note: str = ""


def t_quantile_975(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scipy ships with scikit-learn, a dependency

    return float(t.ppf(0.975, df))


def mean_ci(values: Iterable[float | None]) -> Summary:
    """Pool ``values`` (``None``/NaN dropped): mean, std (ddof=1), 95% t-interval half-width.

    ``n == 0`` gives all ``None`` with note ``"no values"``; ``n == 1`` gives the mean and
    ``None`` for std and CI with note :data:`CI_UNDEFINED_NOTE`.
    """
    xs = [float(v) for v in values if not missing(v)]
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, "no values")
    mean = safe_sum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, CI_UNDEFINED_NOTE)
    std = math.sqrt(safe_sum((x - mean) * (x - mean) for x in xs) / (n - 1))
    return Summary(n, mean, std, t_quantile_975(n - 1) * std / math.sqrt(n))


def safe_sum(values: Iterable[float]) -> float:
    """``math.fsum(values)``, but ``inf`` (or NaN for ``inf - inf``) where the sum overflows
    or has infinite terms, instead of an exception."""
    xs = list(values)
    try:
        return math.fsum(xs)
    except (OverflowError, ValueError):
        return sum(xs)


def missing(value: object) -> bool:
    """``None`` or NaN: a figure that was not measured (never shown or pooled as 0)."""
    return value is None or (isinstance(value, float) and math.isnan(value))

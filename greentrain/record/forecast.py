"""Forecasting a run's total energy from its first epochs, with an interval.

What greentrain knows after a few epochs: the measured joules of each finished epoch (its
window), how many epochs the run will have, and -- for ssProp -- each epoch's analytic backward
FLOPs (a scheduled drop rate makes epochs cost different amounts: a bar schedule alternates
dense and sparse epochs).

Method (:func:`forecast`):

* With FLOPs that differ between the epochs seen and the epochs to come, epoch energy is
  modelled as ``E = a + b * F`` (joules; ``F`` = the epoch's backward FLOPs), fitted by least
  squares to the epochs seen; each remaining epoch is predicted from its own ``F``.
* Otherwise (a dense run, a constant drop rate, or epochs seen that all share one ``F``) every
  remaining epoch is predicted at the mean joules per epoch seen.
* The interval is a two-sided 95% prediction interval for the *sum* of the remaining epochs:
  Student's t with the fit's residual degrees of freedom, variance = n_left residual variances
  (each future epoch's own scatter) plus the variance of the fitted sum (the parameters'
  uncertainty). With too few epochs for a variance (one epoch, or two for the two-parameter
  fit) there is no interval: ``low``/``high`` are None and ``note`` says so -- never 0.
* ``total = spent + predicted remaining``; CO2e follows at the run's intensity and PUE.

Pure functions of numbers; joules in, joules out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from greentrain.units import co2_g


@dataclass(frozen=True)
class Forecast:
    """A run's forecast total energy (joules) after ``epochs_done`` of ``epochs_total``."""

    epochs_done: int
    epochs_total: int
    spent_j: float
    total_j: float
    low_j: float | None
    high_j: float | None
    method: str
    note: str = ""

    @property
    def half_width_j(self) -> float | None:
        return None if self.high_j is None else (self.high_j - self.low_j) / 2

    def shifted(self, outside_j: float, done_offset: int = 0) -> Forecast:
        """The same forecast with ``outside_j`` joules spent outside the epochs seen (setup,
        evaluations) added to every figure, and epochs counted from ``done_offset`` (a resumed
        run's first epoch)."""

        def add(v: float | None) -> float | None:
            return None if v is None else v + outside_j

        return dataclasses.replace(
            self, epochs_done=self.epochs_done + done_offset,
            epochs_total=self.epochs_total + done_offset, spent_j=self.spent_j + outside_j,
            total_j=self.total_j + outside_j, low_j=add(self.low_j), high_j=add(self.high_j),
        )  # fmt: skip

    def co2_g(self, intensity_g_per_kwh: float, pue: float = 1.0) -> tuple[float, ...]:
        """(total, low, high) grams CO2e; low/high NaN when there is no interval."""
        low = math.nan if self.low_j is None else co2_g(self.low_j, intensity_g_per_kwh, pue)
        high = math.nan if self.high_j is None else co2_g(self.high_j, intensity_g_per_kwh, pue)
        return co2_g(self.total_j, intensity_g_per_kwh, pue), low, high

    def to_dict(self) -> dict:
        return {
            "epochs_done": self.epochs_done,
            "epochs_total": self.epochs_total,
            "spent_j": self.spent_j,
            "total_j": self.total_j,
            "low_j": self.low_j,
            "high_j": self.high_j,
            "method": self.method,
            "note": self.note,
        }


def _t975(df: int) -> float:
    """Two-sided 95% quantile of Student's t (scipy ships with scikit-learn, a dependency)."""
    from scipy.stats import t  # heavy: only when an interval is computed

    return float(t.ppf(0.975, df))


def _fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float, float, float]:
    """Least squares ``y = a + b x``: (a, b, residual variance, mean x, Sxx)."""
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxx = math.fsum((xi - mx) ** 2 for xi in x)
    b = math.fsum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True)) / sxx
    a = my - b * mx
    rss = math.fsum((yi - a - b * xi) ** 2 for xi, yi in zip(x, y, strict=True))
    return a, b, rss / (n - 2) if n > 2 else math.nan, mx, sxx


def forecast(
    epoch_j: Sequence[float],
    epochs_total: int,
    flops: Sequence[float] | None = None,
) -> Forecast:
    """The forecast after ``len(epoch_j)`` finished epochs (see the module docstring).

    Args:
        epoch_j: measured joules of each finished epoch, in order.
        epochs_total: epochs the run will have in all (>= the epochs seen).
        flops: backward FLOPs of every epoch of the run (``epochs_total`` values), when known.
    """
    seen = len(epoch_j)
    if seen < 1:
        raise ValueError("a forecast needs at least one finished epoch")
    if epochs_total < seen:
        raise ValueError(f"{seen} epochs seen but the run has {epochs_total}")
    spent = math.fsum(epoch_j)
    left = epochs_total - seen
    if left == 0:
        return Forecast(seen, epochs_total, spent, spent, spent, spent, "finished")
    f_seen = list(flops[:seen]) if flops is not None else []
    f_left = list(flops[seen:epochs_total]) if flops is not None else []
    if len(set(f_seen)) > 1:  # two FLOPs levels seen (a bar schedule): fit energy to FLOPs
        return _by_flops(list(epoch_j), f_seen, f_left, spent, epochs_total)
    note = ""
    if f_left and set(f_left) - set(f_seen):
        note = "epochs to come have other FLOPs than those seen; predicted at the mean seen"
    return _by_mean(list(epoch_j), left, spent, epochs_total, note)


def _by_mean(y: list[float], left: int, spent: float, total: int, note: str) -> Forecast:
    n = len(y)
    mean = math.fsum(y) / n
    predicted = spent + left * mean
    method = "mean joules per epoch seen x epochs left"
    if n < 2:
        note = "; ".join(filter(None, [note, "one epoch: no interval"]))
        return Forecast(n, total, spent, predicted, None, None, method, note)
    var = math.fsum((v - mean) ** 2 for v in y) / (n - 1)
    half = _t975(n - 1) * math.sqrt(var * (left + left**2 / n))
    return Forecast(n, total, spent, predicted, predicted - half, predicted + half, method, note)


def _by_flops(
    y: list[float], f_seen: list[float], f_left: list[float], spent: float, total: int
) -> Forecast:
    n = len(y)
    a, b, var, mx, sxx = _fit_line(f_seen, y)
    predicted = spent + math.fsum(a + b * f for f in f_left)
    method = "joules per epoch = a + b x backward FLOPs, least squares over the epochs seen"
    if n < 3 or not math.isfinite(var):
        return Forecast(n, total, spent, predicted, None, None, method,
                        f"{n} epochs: too few for an interval of a two-parameter fit")  # fmt: skip
    m = len(f_left)
    fsum = math.fsum(f_left)
    # variance of the fitted sum over the remaining epochs: m^2/n + (sum f - m mx)^2 / Sxx
    fitted = m * m / n + (fsum - m * mx) ** 2 / sxx
    half = _t975(n - 2) * math.sqrt(var * (m + fitted))
    return Forecast(n, total, spent, predicted, predicted - half, predicted + half, method)

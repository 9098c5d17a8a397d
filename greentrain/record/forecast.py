"""Forecasting a run's total energy from its finished epochs, with an interval that holds up
when epochs drift.

What greentrain knows after a few epochs: the measured joules of each finished epoch (its
window), how many epochs the run will have, and -- for ssProp -- each epoch's analytic backward
FLOPs (a scheduled drop rate makes epochs cost different amounts: a bar schedule alternates
dense and sparse epochs).

Method (:func:`forecast`; the reasons and the back-test are in ``docs/forecasts-and-budgets.md``):

* **Model.** Epoch energy is multiplicative in its causes, so it is modelled in logs::

      log E_t = b0 (+ b1 F_t) (+ b2 t) + u_t

  ``F_t`` the epoch's backward FLOPs (only when the epochs fitted have more than one level);
  ``t`` the epoch's index, a *trend* term. The first epoch leaves the fit once three later
  epochs exist (compilation, cuDNN autotuning, a dataset cache make it unlike the others); it
  still counts in what was spent.
* **Trend by evidence.** Two models are fitted: without the trend, and (when a degree of
  freedom remains after it, from three epochs on) with it. A drifting job (15% dearer each
  epoch, a cache warming up, a machine filling) must be extrapolated along its drift, with the
  slope's uncertainty, which grows with the distance extrapolated; a steady job should not pay
  for a slope it does not have. The forecast averages the two models by weights from how well
  each *would have forecast this run*: from every earlier origin, each model fitted to the
  epochs before it predicts the sum of the following seen epochs, up to as many as are still to
  come (a leave-future-out score at the forecast's own horizon). Before any origin can be
  scored, the Bayesian information criterion on the effective number of epochs decides. The
  centre is the weighted mean, the interval the central 95% of the mixture of the two
  predictive distributions. (Both weights: :mod:`greentrain.record.epoch_models`.)
* **Correlated variation.** Epochs on a shared machine are dear or cheap in runs (another job
  comes and goes): the residuals ``u_t`` are treated as an AR(1) series,
  ``corr(u_s, u_t) = rho^|s-t|``, ``rho`` estimated from them, corrected for the bias of fitted
  residuals and shrunk toward a prior of 0.5 (the siblings' own with a sibling prior).
* **Interval.** To first order the remaining energy's error is a linear form ``c'u`` of every
  epoch's variation (the fitted epochs through the parameters, ``inverse X' u``, and the epochs
  to come, each weighted by its predicted joules), so ``Var(S) = s^2 c' R c``: each future
  epoch's own variation, their correlation with one another and with the epochs just seen, and
  the parameters' uncertainty, the trend's included. ``s^2 = RSS / tr((I - H) R)``: the
  variation a fitted level absorbs from correlated residuals is counted back. Each model's
  predictive distribution is Student's t (its residual degrees of freedom) with that scale;
  the interval is the mixture's.
* **Bounds.** The low end is never below what was already spent; the half-width is never
  below :data:`MIN_HALF_WIDTH` of the predicted remaining energy (an interval of zero width
  would claim more than any meter knows). With one epoch seen (or too few for the model's
  degrees of freedom) there is no interval: ``low``/``high`` are None and ``note`` says so.
* **Sibling runs** (``prior``, :mod:`greentrain.record.siblings`): finished runs of the same
  configuration give the shape of the run's epochs and how much they vary; the same two models
  are then fitted to the run's log joules *about the siblings' mean profile* (the level, and a
  trend away from it), with the residual variance pooled with the siblings' and the AR(1)
  prior taken from theirs; the level and the trend have priors from how far the siblings'
  levels and slopes lie apart (the level's unless the run's own level conflicts with it), each
  prior's spread counted in the interval. Without siblings, everything is as above.
* ``total = spent + predicted remaining``; CO2e follows at the run's intensity and PUE.

Pure functions of numbers; joules in, joules out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from greentrain.record.epoch_models import (
    Fit,
    bic_trend_weight,
    fit_models,
    future_trend_weight,
)
from greentrain.record.siblings import SiblingPrior
from greentrain.units import co2_g

LEVEL = 0.95  # the interval's nominal coverage
MIN_HALF_WIDTH = 0.01  # of the predicted remaining energy: the floor of every half-width


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
    siblings: int = 0  # sibling runs the prior came from (0: no prior)
    siblings_note: str = ""  # why there is no prior, where one was looked for

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
            "siblings": self.siblings,
            "siblings_note": self.siblings_note,
        }


def _t_quantile(df: int) -> float:
    """Two-sided :data:`LEVEL` quantile of Student's t (scipy ships with scikit-learn)."""
    from scipy.stats import t  # heavy: only when an interval is computed

    return float(t.ppf(0.5 + LEVEL / 2, df))


def forecast(
    epoch_j: Sequence[float],
    epochs_total: int,
    flops: Sequence[float] | None = None,
    prior: SiblingPrior | None = None,
) -> Forecast:
    """The forecast after ``len(epoch_j)`` finished epochs (see the module docstring).

    Args:
        epoch_j: measured joules of each finished epoch, in order (each > 0).
        epochs_total: epochs the run will have in all (>= the epochs seen).
        flops: backward FLOPs of every epoch of the run (``epochs_total`` values), when known.
        prior: what finished sibling runs say (:func:`greentrain.record.siblings.sibling_prior`
            for ``epochs_total`` epochs); ignored when it covers fewer epochs.
    """
    seen = len(epoch_j)
    if seen < 1:
        raise ValueError("a forecast needs at least one finished epoch")
    if epochs_total < seen:
        raise ValueError(f"{seen} epochs seen but the run has {epochs_total}")
    if any(not (0 < v < math.inf) for v in epoch_j):
        raise ValueError("every epoch's energy must be a positive number of joules")
    spent = math.fsum(epoch_j)
    left = epochs_total - seen
    if prior is not None and len(prior.offset) < epochs_total:
        prior = None
    siblings = prior.siblings if prior is not None else 0
    if left == 0:
        return Forecast(seen, epochs_total, spent, spent, spent, spent, "finished", "", siblings)
    if flops is not None and len(flops) < epochs_total:
        flops = None
    note = ""
    if (prior is None and flops is not None and len(set(flops[:seen])) == 1
            and set(flops[seen:]) - {flops[0]}):  # fmt: skip
        note = "epochs to come have other FLOPs than those seen; predicted at the level seen"
    fits = fit_models(epoch_j, flops, seen, prior)
    if not fits:  # FLOPs that cannot be told apart from the rest: fit without them
        fits = fit_models(epoch_j, None, seen, prior)
    assert fits  # one column of ones always has full rank
    weights = [1.0]
    if len(fits) == 2:
        p = future_trend_weight(fits, epoch_j, flops if "F" in fits[0].columns else None, seen,
                           epochs_total - seen)  # fmt: skip
        p = bic_trend_weight(*fits) if p is None else p  # no origin yet: the BIC decides
        weights = [1.0 - p, p]
    future = range(seen, epochs_total)
    parts = []  # (weight, predicted remaining, its standard deviation, degrees of freedom)
    for weight, fit in zip(weights, fits, strict=True):
        remaining, sd = fit.predict_sum(future, flops if "F" in fit.columns else None)
        parts.append((weight, remaining, sd, fit.df))
    remaining = math.fsum(w * r for w, r, _, _ in parts)
    method = _describe(fits[0], weights[1] if len(fits) == 2 else None)
    total = spent + remaining
    if not all(math.isfinite(sd) for _, _, sd, _ in parts):
        why = "one epoch: no interval" if seen == 1 else f"{seen} epochs: too few for an interval"
        note = "; ".join(filter(None, [note, why]))
        return Forecast(seen, epochs_total, spent, total, None, None, method, note, siblings)
    low, high = _mixture_interval(parts)
    floor = MIN_HALF_WIDTH * remaining
    low, high = min(low, remaining - floor), max(high, remaining + floor)
    return Forecast(seen, epochs_total, spent, total, max(spent, spent + low), spent + high,
                    method, note, siblings)  # fmt: skip


def _mixture_interval(parts: Sequence[tuple[float, float, float, int]]) -> tuple[float, float]:
    """The central :data:`LEVEL` interval of a mixture of scaled Student's t distributions
    ``(weight, centre, scale, degrees of freedom)``: the predictive distribution of the
    remaining joules averaged over the models by their weights. One part: ``centre +- t
    scale``."""
    from scipy.optimize import brentq
    from scipy.stats import t

    parts = [p for p in parts if p[0] > 0]
    tails = (0.5 - LEVEL / 2, 0.5 + LEVEL / 2)
    if len(parts) == 1:
        _, centre, scale, df = parts[0]
        half = _t_quantile(df) * scale
        return centre - half, centre + half

    def cdf(x: float) -> float:
        return math.fsum(
            w * (t.cdf((x - c) / s, df) if s > 0 else float(x >= c)) for w, c, s, df in parts
        )

    out = []
    for tail in tails:
        # a mixture's quantile lies between its parts' own quantiles
        own = [c + s * float(t.ppf(tail, df)) for _, c, s, df in parts]
        a, b = min(own), max(own)
        if b - a <= 1e-12 * max(abs(b), 1.0) or cdf(a) >= tail:  # (a part of zero scale)
            out.append(a)
        elif cdf(b) <= tail:
            out.append(b)
        else:
            out.append(brentq(lambda x, q=tail: cdf(x) - q, a, b, xtol=1e-9 * (b - a)))
    return out[0], out[1]


def _describe(fit: Fit, trend_weight: float | None) -> str:
    """The model in words; with the trend model's weight where the two were averaged."""
    terms = {"F": "backward FLOPs", "t": "epoch trend"}
    used = [terms[c] for c in fit.columns if c in terms]
    if fit.prior is not None:
        n = fit.prior.siblings
        used.insert(0, f"profile of {n} sibling run{'s' if n != 1 else ''}")
    if trend_weight is not None:
        used.append(f"epoch trend (weight {trend_weight:.2f})")
    return "log joules per epoch = " + " + ".join(["level", *used]) + ", least squares"

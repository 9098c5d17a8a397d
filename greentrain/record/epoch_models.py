"""The models of log epoch energy behind :func:`greentrain.record.forecast.forecast`: least
squares fits with and without an epoch trend, the AR(1) correlation of their residuals, and the
weight of the trend model (the method and its reasons: ``docs/forecasts-and-budgets.md``).

With a :class:`~greentrain.record.siblings.SiblingPrior` the logs are fitted about the
siblings' profile (``log E_t - offset_t``), the residual variance is pooled with the siblings'
(its degrees of freedom added to the fit's), the level about the profile has a normal prior of
mean 0 and the siblings' level variance ``tau0^2`` (a ridge ``s2 / tau0^2`` on the level,
``tau0^2`` at least :data:`LEVEL_FLOOR` ``s2``), and the trend away from the profile one of
mean 0 and the siblings' slope variance ``tau2`` (a ridge ``s2 / tau2`` on the trend term);
where the siblings' slopes vary no more than their noise explains (``tau2 = 0``) only the
model without a trend is fitted. A ridge ``lambda`` biases its coefficient toward the prior's
mean; the prior's own spread is counted back in a forecast's variance
(``+ s2 lambda (g' A^-1 e_j)^2``, the estimate's error against a coefficient drawn from the
prior), so the interval stays honest where the prior is narrow.

Pure functions of numbers: epoch joules in logs, epochs by index (0 the run's first).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greentrain.record.siblings import SiblingPrior

WARMUP_AFTER = 3  # the first epoch leaves the fit once this many later epochs are seen
TREND_DF = 1  # residual degrees of freedom a trend term must leave
RHO_PRIOR = 0.5  # prior mean of the lag-1 autocorrelation of epoch-to-epoch variation
RHO_PRIOR_EPOCHS = 10  # the prior's weight, in epochs (against the residuals' degrees of freedom)
RHO_MAX = 0.9
LEVEL_FLOOR = 0.01  # the siblings' level variance counts at least this share of the epochs'
CHI2_1_95 = 3.841458820694124  # chi-square's 95% quantile, one degree of freedom
SCORED_ORIGINS = 50  # the latest origins the leave-future-out weight scores (bounds its cost)


def lag1_autocorrelation(
    residuals: Sequence[float], parameters: int = 1, prior: float = RHO_PRIOR
) -> float:
    """The lag-1 autocorrelation ``rho`` of epoch-to-epoch variation, estimated from the
    residuals of a fit with ``parameters`` coefficients and shrunk toward a prior.

    The sample lag-1 autocorrelation of least-squares residuals is biased low by about
    ``parameters / n`` (a fitted level and trend make residuals anticorrelated), and on a few
    epochs it is mostly noise. It is corrected by that bias and averaged with
    :data:`RHO_PRIOR` (the measured runs of ``reports/forecast-backtest``: 0.1-0.7), which
    weighs as much as :data:`RHO_PRIOR_EPOCHS` residual degrees of freedom (``prior``: another
    prior mean, the siblings' own); the result is clipped to ``[0, RHO_MAX]``. Fewer than three
    residuals: the prior."""
    n = len(residuals)
    prior = min(max(prior, 0.0), RHO_MAX)
    if n < 3:
        return prior
    mean = math.fsum(residuals) / n
    r = [v - mean for v in residuals]
    denominator = math.fsum(v * v for v in r)
    if denominator <= 0:
        return prior
    lag1 = math.fsum(x * y for x, y in zip(r, r[1:], strict=False)) / denominator
    weight = max(n - parameters, 0)
    rho = (weight * (lag1 + parameters / n) + RHO_PRIOR_EPOCHS * prior) / (
        weight + RHO_PRIOR_EPOCHS
    )
    return min(max(rho, 0.0), RHO_MAX)


def ar1_times(epochs: Sequence[int], v: Any, rho: float) -> Any:
    """``R v`` for the AR(1) correlation ``R_ij = rho^|t_i - t_j|`` of the epochs ``t``
    (increasing), in O(n): a forward and a backward recursion instead of an n x n matrix."""
    import numpy as np

    v = np.asarray(v, dtype=float)
    forward, backward = v.tolist(), v.tolist()  # Python floats: a loop over them is fast
    decay = [rho ** (b - a) for a, b in zip(epochs, epochs[1:], strict=False)]
    for j in range(1, len(forward)):
        forward[j] += decay[j - 1] * forward[j - 1]
    for j in range(len(backward) - 2, -1, -1):
        backward[j] += decay[j] * backward[j + 1]
    return np.array(forward) + np.array(backward) - v


@dataclass(frozen=True)
class Fit:
    """A least-squares fit of log epoch energy: what it predicts for chosen epochs."""

    columns: tuple[str, ...]
    beta: Any  # numpy vector
    inverse: Any  # (X'X)^-1
    variance: float  # residual variance of the logs (NaN without degrees of freedom)
    df: int
    factor: float = 1.0  # long-run variance factor of autocorrelated residuals
    rho: float = 0.0  # their lag-1 autocorrelation (AR(1))
    fitted: tuple[int, ...] = ()  # the epochs fitted
    rss: float = math.nan  # residual sum of squares of the logs
    prior: SiblingPrior | None = None  # the siblings' profile and variation, if any
    ridge: tuple[float, ...] = ()  # per column: the prior's ridge s2 / tau2 (0: none)

    def rows(self, index: Sequence[int], flops: Sequence[float] | None) -> Any:
        import numpy as np

        cols = {"1": [1.0] * len(index), "t": [float(i) for i in index]}
        if "F" in self.columns:
            cols["F"] = [float(flops[i]) for i in index]  # type: ignore[index]
        return np.array([cols[c] for c in self.columns], dtype=float).T

    def offset(self, index: Sequence[int]) -> Any:
        """The siblings' profile at the epochs ``index`` (zeros without siblings)."""
        import numpy as np

        if self.prior is None:
            return np.zeros(len(index))
        return np.array([self.prior.offset[i] for i in index], dtype=float)

    def predict_sum(
        self, index: Sequence[int], flops: Sequence[float] | None
    ) -> tuple[float, float]:
        """(predicted joules of the epochs ``index``, standard deviation of that sum)."""
        import numpy as np

        x = self.rows(index, flops)
        w = np.exp(x @ self.beta + self.offset(index))
        total = float(w.sum())
        if not math.isfinite(self.variance):
            return total, math.nan
        # the sum's error, to first order: g'(beta_hat - beta) - sum_t w_t u_t, where
        # beta_hat - beta = inverse X' u_fitted: a linear form c'u of every epoch's variation
        g = w @ x
        seen = list(self.fitted)
        c = np.concatenate([self.rows(seen, flops) @ (self.inverse @ g), -w])
        var = self.variance * float(c @ ar1_times([*seen, *index], c, self.rho))
        for j, ridge in enumerate(self.ridge):  # a prior's own spread: the ridge's bias
            var += self.variance * ridge * float(g @ self.inverse[:, j]) ** 2
        return total, math.sqrt(max(var, 0.0))


def fit_models(
    y: Sequence[float], flops: Sequence[float] | None, seen: int,
    prior: SiblingPrior | None = None,
) -> list[Fit]:  # fmt: skip
    """The models fitted to the first ``seen`` epochs: the level (and FLOPs), and the same with
    an epoch trend where a degree of freedom remains after it; the first epoch leaves the fit
    once :data:`WARMUP_AFTER` later epochs are seen. With ``prior``, about the siblings'
    profile (which carries the FLOPs' effect: no FLOPs column then)."""
    first = 1 if seen - 1 >= WARMUP_AFTER else 0
    index = list(range(first, seen))
    columns = ["1"]
    if prior is None and flops is not None and len({flops[i] for i in index}) > 1:
        columns.append("F")
    candidates = [columns]
    flat = prior is not None and prior.slope_variance == 0  # siblings drift alike
    if not flat and len(index) - (len(columns) + 1) >= TREND_DF:
        candidates.append([*columns, "t"])
    free = least_squares(y, flops, index, columns, prior, level_prior=False) if prior else None
    level = prior is not None and _level_agrees(free, prior)
    fits = [least_squares(y, flops, index, c, prior, level_prior=level) for c in candidates]
    return [fit for fit in fits if fit is not None]


def _level_agrees(free: Fit | None, prior: SiblingPrior) -> bool:
    """Whether the run's own level (``free``: fitted about the siblings' profile without the
    level's prior) is one the siblings' level prior allows: within its 95% range, counting the
    estimate's own uncertainty (``b0^2 / (tau0^2 + var b0) <= 3.84``, chi-square with one degree
    of freedom). A run whose level its siblings do not predict (another node, another load)
    keeps its level free, as without the prior."""
    if free is None or not free.variance > 0 or not prior.level_variance >= 0:
        return False
    own = free.variance * float(free.inverse[0, 0]) * free.factor  # the level's, AR(1) epochs
    spread = max(prior.level_variance, LEVEL_FLOOR * prior.variance)
    return float(free.beta[0]) ** 2 <= CHI2_1_95 * (spread + own)


def bic_trend_weight(level: Fit, trend: Fit) -> float:
    """The posterior probability of the model with a trend against the one without, from the
    Bayesian information criterion counted on the *effective* number of epochs ``n / f`` (``f``
    the trend model's long-run factor: correlated epochs carry less evidence than as many
    independent ones, and an AR(1) wanders like a trend). Equal prior odds. Used while too few
    epochs are seen for :func:`future_trend_weight`."""
    n = len(level.fitted)
    effective = max(n / trend.factor, 1.0)

    def bic(fit: Fit) -> float:
        rss = max(fit.rss, 1e-300)  # an exact fit
        return effective * math.log(rss / n) + len(fit.columns) * math.log(effective)

    half_delta = (bic(trend) - bic(level)) / 2
    return 1.0 / (1.0 + math.exp(min(half_delta, 700.0)))


def future_trend_weight(
    fits: Sequence[Fit], y: Sequence[float], flops: Sequence[float] | None, seen: int,
    horizon: int,
) -> float | None:  # fmt: skip
    """The trend model's weight (``fits``: without, with the trend) from how well each model,
    fitted to the epochs before each origin, predicted the sum of the following seen epochs
    (up to ``horizon`` of them, the epochs the forecast has to come): the difference of their
    log predictive densities (Student's t, as the interval) summed over the origins, divided
    by the mean window length (consecutive windows overlap: each epoch's surprise is counted
    about once), as log odds; the latest :data:`SCORED_ORIGINS` origins. None while no origin
    leaves the trend model a degree of freedom."""
    first = 1 if seen - 1 >= WARMUP_AFTER else 0
    index = list(range(first, seen))
    need = len(fits[1].columns) + 1
    score, windows, length = 0.0, 0, 0
    for k in range(max(need, len(index) - SCORED_ORIGINS), len(index)):
        sub = index[:k]
        ahead = range(index[k], min(seen, index[k] + horizon))
        actual = math.fsum(y[i] for i in ahead)
        parts = []
        for fit in fits:
            again = least_squares(y, flops, sub, list(fit.columns), fit.prior,
                                  level_prior=bool(fit.ridge and fit.ridge[0] > 0))  # fmt: skip
            if again is None or again.df < 1:
                break
            predicted, sd = again.predict_sum(ahead, flops if "F" in fit.columns else None)
            sd = max(sd, 1e-9 * predicted)  # an exact fit
            parts.append(_t_logpdf((actual - predicted) / sd, again.df) - math.log(sd))
        if len(parts) == 2:
            score += parts[1] - parts[0]
            windows += 1
            length += len(ahead)
    if not windows:
        return None
    score /= length / windows
    return 1.0 / (1.0 + math.exp(-max(min(score, 700.0), -700.0)))


def _t_logpdf(x: float, df: int) -> float:
    """The log density of Student's t with ``df`` degrees of freedom at ``x`` (closed form:
    scipy's costs a millisecond a call)."""
    return (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
            - (df + 1) / 2 * math.log1p(x * x / df))  # fmt: skip


def least_squares(
    y: Sequence[float], flops: Sequence[float] | None, index: list[int], columns: list[str],
    prior: SiblingPrior | None = None, *, level_prior: bool = True,
) -> Fit | None:  # fmt: skip
    """Fit ``columns`` to the log joules of the epochs ``index`` (about the siblings' profile
    with ``prior``, whose variation then pools with the residuals', and whose level variance
    is the level's prior unless not ``level_prior``); None when ``X'X`` is singular."""
    import numpy as np

    fit = Fit(tuple(columns), None, None, math.nan, len(index) - len(columns), prior=prior)
    x = fit.rows(index, flops)
    if "F" in columns:  # scale FLOPs to order 1 for a well-conditioned X'X
        x[:, columns.index("F")] /= max(abs(flops[i]) for i in index)  # type: ignore[index]
    logs = np.log(np.asarray([y[i] for i in index], dtype=float)) - fit.offset(index)
    xtx = x.T @ x
    if np.linalg.matrix_rank(xtx) < len(columns):
        return None
    ridge = [0.0] * len(columns)
    if "t" in columns and prior is not None and prior.slope_variance > 0 < prior.variance:
        ridge[columns.index("t")] = prior.variance / prior.slope_variance  # the slope's prior
    if level_prior and prior is not None and prior.level_variance >= 0 and prior.variance > 0:
        ridge[0] = prior.variance / max(prior.level_variance, LEVEL_FLOOR * prior.variance)
    xtx = xtx + np.diag(ridge)
    inverse = np.linalg.inv(xtx)
    beta = inverse @ (x.T @ logs)
    if "F" in columns:  # back to FLOPs as given
        k = columns.index("F")
        scale = max(abs(flops[i]) for i in index)  # type: ignore[index]
        beta[k] /= scale
        inverse[k, :] /= scale
        inverse[:, k] /= scale
    x = fit.rows(index, flops)
    resid = logs - x @ beta
    rho_prior = RHO_PRIOR if prior is None or math.isnan(prior.rho) else prior.rho
    rho = lag1_autocorrelation([float(r) for r in resid], len(columns), rho_prior)
    # E[rss] = s2 tr((I - H) R) for AR(1) variation (R_ij = rho^|i-j|): correlated epochs
    # leave less of their variation in the residuals than n - p independent ones would
    r_x = np.column_stack([ar1_times(index, x[:, j], rho) for j in range(len(columns))])
    residual_share = len(index) - float(np.trace(inverse @ (x.T @ r_x)))  # tr(R) - tr(HR)
    rss, df, share = float(resid @ resid), fit.df, max(residual_share, 0.0)
    if prior is not None and prior.df > 0:  # pooled with the siblings' variation
        rss, df = rss + prior.df * prior.variance, max(df, 0) + prior.df
        share += prior.df
    variance = rss / share if df >= 1 and share > 0 else math.nan
    return dataclasses.replace(
        fit, beta=beta, inverse=inverse, variance=variance, factor=(1 + rho) / (1 - rho),
        rho=rho, fitted=tuple(index), df=df,
        rss=float(resid @ resid), ridge=tuple(ridge),
    )  # fmt: skip

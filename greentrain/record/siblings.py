"""What finished sibling runs tell a forecast: the shape of a run's epochs and how much one
run's epochs vary about that shape (an empirical-Bayes prior for
:func:`greentrain.record.forecast.forecast`; the method: ``docs/methodology.md``).

Sibling runs are finished runs of the same configuration (:func:`sibling_key`, the match rule:
the same command and the same config, each but for its seed, its run name, tags and store;
the config holds the number of epochs). Their epochs share what the current run's own few
epochs can only guess at: the drift (a cache that warms, a workload that grows), a slow first
epoch, a bar schedule's cheap and dear epochs. What differs from run to run is the *level*
(another job on the machine, a different node) and the epoch-to-epoch variation.

* **Profile.** ``offset_t``, the mean over siblings of their log joules of epoch ``t``: the
  forecast models ``log E_t = offset_t + b0 (+ b2 t) + u_t``, so it estimates the current run's
  level against its siblings' shape (and, with a trend, how it drifts away from it).
* **Variation prior.** Each sibling against the mean profile of the others (leave one out),
  with its own level removed, gives residuals whose variance, rescaled from a comparison with
  ``K - 1`` runs to one with ``K``, estimates ``var(u_t)`` of the current run against all
  ``K``; it weighs as :attr:`SiblingPrior.df` residual degrees of freedom (the pooled residuals'
  count, at most :data:`PRIOR_DF_MAX`) in the current fit's variance. Their lag-1
  autocorrelation (pooled over the siblings, corrected by ``+1/n`` for the level removed) is
  the prior mean of the run's own (:func:`greentrain.record.epoch_models.lag1_autocorrelation`)
  in place of the fixed 0.5. One sibling: no variation prior (the profile only).
* **Level prior.** How far the siblings' levels lie from one another, less what their
  epochs' variation explains (method of moments, rescaled to a run against all ``K``), is the
  variance ``level_variance`` of the current run's level about the profile: its level is
  estimated between its own epochs and the siblings' (a ridge, as the trend's below), so that
  the few epochs seen early in a run need not carry the level alone. Runs that differ in level
  (another node, another load) give a large variance and the run's own epochs decide.

Pure functions of numbers: joules in, logs out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrain.record.ranking import total_j

MIN_SIBLINGS = 2  # fewer give no prior
PRIOR_DF_MAX = 20  # the variation prior weighs at most as much as 20 epochs of the run's own
WARMUP_EPOCHS = 1  # the first epoch (its own cost, unlike a sibling's) leaves the variation prior


VARYING_KEYS = frozenset({"seed", "name", "tags", "store"})  # what siblings may differ in
VARYING_OPTIONS = frozenset({"--seed", "--name", "--tag", "--store"})  # each with a value


def _varying(word: str) -> bool:
    """Whether ``word`` is one of :data:`VARYING_OPTIONS`, alone or as ``--option=value``."""
    return word.split("=", 1)[0] in VARYING_OPTIONS


def command_start(command: Sequence[Any]) -> list[str]:
    """The words of ``command`` before the first option siblings may differ in (the part a
    sibling's stored command starts with)."""
    out = []
    for word in map(str, command):
        if _varying(word):
            break
        out.append(word)
    return out


def sibling_key(command: Sequence[Any] | None, config: Mapping[str, Any] | None) -> str:
    """The match rule of sibling runs: the run's command without the options (and their
    values) of :data:`VARYING_OPTIONS`, and its config without :data:`VARYING_KEYS`, as one
    string; runs with equal keys are siblings (seeds of one configuration)."""
    words: list[str] = []
    skip = False
    for word in [str(w) for w in command or []]:
        if skip:
            skip = False
        elif word in VARYING_OPTIONS:
            skip = True  # its value is the next word
        elif not _varying(word):
            words.append(word)
    rest = {k: v for k, v in (config or {}).items() if k not in VARYING_KEYS}
    return json.dumps([words, rest], sort_keys=True, default=str)


def epoch_joules(run: Mapping[str, Any]) -> list[float] | None:
    """The joules of each of a run object's ``epoch`` windows, in order (each the sum of its
    domains' best figures), or None when the run has none or one was not measured."""
    windows = run.get("windows")
    if not isinstance(windows, list):
        return None
    out = []
    for window in windows:
        if not isinstance(window, Mapping) or window.get("name") != "epoch":
            continue
        energy = window.get("energy")
        joules = total_j(energy) if isinstance(energy, Mapping) else None
        if joules is None or not 0 < joules < math.inf:
            return None
        out.append(float(joules))
    return out or None


@dataclass(frozen=True)
class SiblingPrior:
    """What :data:`MIN_SIBLINGS` or more sibling runs say about a run of ``len(offset)``
    epochs (logs of joules; see the module docstring)."""

    offset: tuple[float, ...]  # the siblings' mean log joules of every epoch of the run
    variance: float  # of one run's log epoch joules about that profile (NaN: not measured)
    df: int  # the variance's weight, in residual degrees of freedom (0: none)
    siblings: int
    rho: float = math.nan  # lag-1 autocorrelation of those residuals (NaN: not measured)
    slope_variance: float = math.nan  # of a run's log-trend slope away from the profile
    level_variance: float = math.nan  # of a run's log level about the profile (NaN: unknown)


def sibling_prior(series: Sequence[Sequence[float]], epochs_total: int) -> SiblingPrior | None:
    """The prior from the epoch joules of finished sibling runs (each at least ``epochs_total``
    epochs, each > 0; longer ones are cut, shorter or unmeasured ones left out); None with
    fewer than :data:`MIN_SIBLINGS` usable (one sibling's profile carries its own noise, and
    with one nothing says how runs differ)."""
    logs = [
        [math.log(v) for v in s[:epochs_total]]
        for s in series
        if len(s) >= epochs_total and all(0 < v < math.inf for v in s[:epochs_total])
    ]
    k = len(logs)
    if k < MIN_SIBLINGS:
        return None
    offset = tuple(math.fsum(run[t] for run in logs) / k for t in range(epochs_total))
    fitted = list(range(WARMUP_EPOCHS if epochs_total - WARMUP_EPOCHS >= 3 else 0, epochs_total))
    m = len(fitted)
    if m < 3:
        return SiblingPrior(offset, math.nan, 0, k)
    diffs, levels = [], []  # each sibling against the mean of the others: its level, the rest
    for i, run in enumerate(logs):
        others = [r for j, r in enumerate(logs) if j != i]
        diff = [run[t] - math.fsum(r[t] for r in others) / (k - 1) for t in fitted]
        mean = math.fsum(diff) / m
        levels.append(mean)
        diffs.append([d - mean for d in diff])
    squares = math.fsum(d * d for diff in diffs for d in diff)
    if squares <= 0:  # identical siblings: no variation measured
        return SiblingPrior(offset, math.nan, 0, k)
    lagged = math.fsum(a * b for diff in diffs for a, b in zip(diff, diff[1:], strict=False))
    rho = lagged / squares + 1 / m  # + the bias of residuals about a fitted level
    # against K - 1 others a difference varies as s2 (1 + 1/(K-1)); against all K as s2 (1 + 1/K)
    rescale = (1 + 1 / k) / (1 + 1 / (k - 1))
    # residuals about a fitted level keep m - sum_ij rho^|i-j| / m of an AR(1)'s variance
    r = min(max(rho, 0.0), 0.9)
    correlated = math.fsum(r ** abs(i - j) for i in range(m) for j in range(m))  # 1'R1
    kept = m - correlated / m
    difference_variance = squares / (k * kept)  # of a sibling's epoch against K - 1 others
    variance = difference_variance * rescale
    # how far the siblings' levels lie apart, less what their epochs' variation explains (a
    # difference's mean over m AR(1) epochs varies as s_d^2 1'R1 / m^2); a level against
    # K - 1 others varies as tau2 (1 + 1/(K-1)), the run's against all K as tau2 (1 + 1/K)
    spread = math.fsum(v * v for v in levels) / k - difference_variance * correlated / m**2
    level_variance = max(0.0, spread) * rescale
    return SiblingPrior(offset, variance, min(k * (m - 1), PRIOR_DF_MAX), k, rho,
                        _slope_variance(diffs, fitted, rho) * rescale, level_variance)  # fmt: skip


def _slope_variance(diffs: Sequence[Sequence[float]], epochs: Sequence[int], rho: float) -> float:
    """How much the siblings' log-trend slopes (per epoch) away from one another vary beyond
    what their epoch-to-epoch variation explains (method of moments: the mean squared slope
    less the mean squared standard error, AR(1)-inflated; at least 0)."""
    m = len(epochs)
    centre = math.fsum(epochs) / m
    sxx = math.fsum((t - centre) ** 2 for t in epochs)
    rho = min(max(rho, 0.0), 0.9)
    factor = (1 + rho) / (1 - rho)
    slopes, errors = [], []
    for diff in diffs:  # each already has mean 0
        slope = math.fsum((t - centre) * d for t, d in zip(epochs, diff, strict=True)) / sxx
        rss = math.fsum((d - slope * (t - centre)) ** 2 for t, d in zip(epochs, diff, strict=True))
        slopes.append(slope * slope)
        errors.append(rss / (m - 2) * factor / sxx)
    return max(0.0, (math.fsum(slopes) - math.fsum(errors)) / len(diffs))

"""Each configuration against dense, with a 95% interval, and the one sentence that answers the
question "which configuration gives the best accuracy per kWh, by how much, how sure, and was the
energy measured?".

**Ratio to dense** of a per-run figure (accuracy per kWh by default) of a configuration:

* **paired by seed** where at least two seeds ran both the configuration and dense: the ratio of
  each seed's pair, pooled as the geometric mean with a 95% t-interval on the log ratios (the
  seed's shared data order and initialisation cancel);
* **bootstrap** otherwise (seeds differ, or a figure is not positive): the ratio of the two means,
  with the 2.5th and 97.5th percentiles of :data:`BOOTSTRAP_ROUNDS` resamples of each side
  (numpy's PCG64 seeded with :data:`BOOTSTRAP_SEED`, so a page and an export agree);
* **no interval** with fewer than two runs on either side.

A configuration is *distinguishable from dense* only when its interval excludes 1.0x.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from greentrain.report.escape import plain_text
from greentrain.report.provenance import energy_split, split_sentence
from greentrain.report.stats import missing, t_quantile_975

BOOTSTRAP_ROUNDS = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Ratio:
    """A configuration's figure over dense's: ``estimate`` and its 95% interval ``low``..``high``
    (``None`` where undefined), ``n`` runs of the configuration (pairs when paired) and
    ``n_dense`` of dense; ``method`` is ``"paired"``, ``"bootstrap"`` or ``"none"``."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    n_dense: int
    method: str

    @property
    def distinguishable(self) -> bool:
        """Whether the 95% interval excludes 1.0 (no interval: not distinguishable)."""
        if self.low is None or self.high is None:
            return False
        return self.low > 1.0 or self.high < 1.0

    def interval_text(self) -> str:
        """``"95% interval 1.52-1.70x, paired by seed, n=3"`` (or why there is none)."""
        if self.method == "paired":
            how = f"paired by seed, n={self.n} pairs"
        else:
            how = f"n={self.n} vs {self.n_dense} dense" + (
                ", bootstrap" if self.method == "bootstrap" else ""
            )
        if self.low is None or self.high is None:
            return f"no interval: {how}"
        return f"95% interval {self.low:.2f}–{self.high:.2f}×, {how}"


def _values(frame: pd.DataFrame, column: str) -> dict[object, float]:
    """seed (or a unique stand-in) -> value, missing values left out."""
    out: dict[object, float] = {}
    for i, (seed, v) in enumerate(zip(frame["seed"], frame[column], strict=True)):
        if missing(v):
            continue
        key = ("run", i) if missing(seed) or seed in out else seed
        out[key] = float(v)
    return out


def ratio(config: Mapping[object, float], dense: Mapping[object, float]) -> Ratio:
    """The :class:`Ratio` of ``config``'s values over ``dense``'s (each keyed by seed)."""
    a = [v for v in config.values() if math.isfinite(v)]
    d = [v for v in dense.values() if math.isfinite(v)]
    config = {k: v for k, v in config.items() if math.isfinite(v)}
    dense = {k: v for k, v in dense.items() if math.isfinite(v)}
    if not a or not d or not sum(d) or not math.isfinite(sum(a) + sum(d)):
        return Ratio(None, None, None, len(a), len(d), "none")
    pairs = [
        (config[s], dense[s])
        for s in config
        if s in dense and not isinstance(s, tuple) and config[s] > 0 and dense[s] > 0
    ]
    if len(pairs) >= 2:
        logs = [math.log(x / y) for x, y in pairs]
        n = len(logs)
        mean = sum(logs) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in logs) / (n - 1))
        half = t_quantile_975(n - 1) * sd / math.sqrt(n)
        return Ratio(
            math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, len(d), "paired"
        )
    point = (sum(a) / len(a)) / (sum(d) / len(d))
    if len(a) < 2 or len(d) < 2:
        return Ratio(point, None, None, len(a), len(d), "none")
    rng = np.random.Generator(np.random.PCG64(BOOTSTRAP_SEED))
    ra = rng.choice(np.asarray(a), size=(BOOTSTRAP_ROUNDS, len(a))).mean(axis=1)
    rd = rng.choice(np.asarray(d), size=(BOOTSTRAP_ROUNDS, len(d))).mean(axis=1)
    ok = rd != 0
    boots = ra[ok] / rd[ok]
    low, high = np.percentile(boots, [2.5, 97.5])
    return Ratio(point, float(low), float(high), len(a), len(d), "bootstrap")


def ratios_to_dense(frame: pd.DataFrame, column: str = "acc_per_kwh") -> dict[str, Ratio]:
    """configuration -> :class:`Ratio` of ``column`` (a per-run figure of
    :func:`~greentrain.report.grouping.runs_frame`) to the dense runs of the same model and
    dataset; dense itself maps to 1.0 with its own spread, configurations without a dense
    baseline are left out."""
    out: dict[str, Ratio] = {}
    if frame.empty:
        return out
    rates = pd.to_numeric(frame["drop_rate"], errors="coerce")
    for label, sub in frame.groupby("configuration", sort=False):
        first = sub.iloc[0]
        same = (frame["model"] == first["model"]) & (frame["dataset"] == first["dataset"])
        dense = frame[same & (rates == 0.0)]
        if dense.empty:
            continue
        out[str(label)] = ratio(_values(sub, column), _values(dense, column))
    return out


@dataclass(frozen=True)
class Answer:
    """The answer of a comparison: the best configuration by accuracy per kWh, its
    :class:`Ratio` to dense, and where its energy came from."""

    best: str | None
    ratio: Ratio | None
    energy: str
    dense_is_best: bool

    def sentence(self) -> str:
        """One sentence to quote (plain text; escape it for the target)."""
        if self.best is None or self.ratio is None or self.ratio.estimate is None:
            return (
                "No configuration can be compared with dense: it needs finished dense and "
                "sparse runs of one model and dataset with accuracy and energy figures."
            )
        best, r = plain_text(self.best), self.ratio
        lead = f"Best accuracy per kWh: {best}, at {r.estimate:.2f}× dense ({r.interval_text()})"
        if self.dense_is_best:
            lead = (
                f"Dense gives the best accuracy per kWh; the best sparse configuration, {best}, "
                f"is at {r.estimate:.2f}× dense ({r.interval_text()})"
            )
        elif r.estimate < 1.0:
            lead = (
                f"No sparse configuration beats dense on accuracy per kWh; the best, {best}, "
                f"is at {r.estimate:.2f}× dense ({r.interval_text()})"
            )
        verdict = "" if r.distinguishable else "; not distinguishable from dense"
        return f"{lead}{verdict}. Energy: {self.energy}."


def answer(frame: pd.DataFrame, runs: Iterable[Mapping], column: str = "acc_per_kwh") -> Answer:
    """The :class:`Answer` for the finished runs in ``frame`` (one model and dataset, from
    :func:`~greentrain.report.grouping.runs_frame`); ``runs`` are their records (for the
    energy's provenance)."""
    ratios = ratios_to_dense(frame, column)
    rates = pd.to_numeric(frame["drop_rate"], errors="coerce") if not frame.empty else None
    sparse = {
        label: r
        for label, r in ratios.items()
        if r.estimate is not None and not (rates[frame["configuration"] == label] == 0.0).all()  # type: ignore[index]
    }
    if not sparse:
        return Answer(None, None, "", False)
    best = max(sparse, key=lambda k: sparse[k].estimate or -math.inf)
    r = sparse[best]
    ids = set(frame.loc[frame["configuration"] == best, "id"])
    energy = split_sentence(energy_split(run for run in runs if run.get("id") in ids))
    dense_is_best = r.distinguishable and (r.high or 0.0) < 1.0
    return Answer(best, r, energy, dense_is_best)


def ratio_cell(r: Ratio | None) -> str:
    """``"1.61× [1.52, 1.70]"`` for a table cell; ``"1.61× (n<2)"`` without an interval."""
    if r is None or r.estimate is None or not math.isfinite(r.estimate):
        return "n/a"
    if r.low is None or r.high is None:
        return f"{r.estimate:.2f}× (no CI)"
    return f"{r.estimate:.2f}× [{r.low:.2f}, {r.high:.2f}]"


def dense_labels(frame: pd.DataFrame) -> Sequence[str]:
    """The configurations of ``frame`` that are dense (drop rate 0)."""
    rates = pd.to_numeric(frame["drop_rate"], errors="coerce")
    return sorted(set(frame.loc[rates == 0.0, "configuration"]))

"""Back-test of the energy forecast on recorded runs: how close it came, early, to the truth.

For every finished run with at least two measured epoch windows, the forecast
(:func:`greentrain.record.forecast.forecast`) is replayed as it would have been made after
``fraction`` of the run's epochs (at least one epoch, fewer than all), from the joules of the
epochs seen and -- where the run logged them -- every epoch's backward FLOPs (the config's
``backward_flops_per_epoch``, else each epoch's logged ``backward_flops_per_iter``: the two
agree, the job logs what it planned). It is compared with the energy all the run's epochs
really took (the sum of its epoch windows): the part of a run the forecast predicts. Work
outside epoch windows (setup, a final evaluation) is the same in forecast and truth at the
end of a live run, so it is left out of both here.

Per run and fraction: predicted and actual joules, the relative error, the interval's width
relative to the actual total, and whether the 95% interval held the actual figure (None when
there was no interval). :func:`summarize` gives, per fraction, the coverage with its 95%
Wilson score interval (a binomial interval: with 6 forecasts, 4 held is 30%-90%), the median
width and the median and worst absolute error. :func:`replay` does the same for any epoch
series (the synthetic jobs of ``benchmarks/forecast_backtest.py``).

With ``siblings="earlier"`` each run's forecast also gets the prior of its sibling runs
(:mod:`greentrain.record.siblings`): the finished runs of the store with the same
:func:`~greentrain.record.siblings.sibling_key` that had ended before it started -- what a live
forecast of that run could have known; with ``siblings="others"``, every other finished run with
that key (as if they had all finished first: more runs with a prior from fewer recorded).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrain.record.forecast import forecast
from greentrain.record.ranking import total_j
from greentrain.record.siblings import SiblingPrior, sibling_key, sibling_prior
from greentrain.report.reading import RunReader

FRACTIONS = (0.10, 0.25, 0.50, 0.75)
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class BacktestRow:
    """One run's forecast after ``epochs_seen`` of ``epochs`` epochs against the actual."""

    run: str
    name: str
    fraction: float
    epochs_seen: int
    epochs: int
    predicted_j: float
    actual_j: float
    low_j: float | None
    high_j: float | None
    method: str
    job: str = ""  # the kind of job (synthetic series), for grouping
    siblings: int = 0  # sibling runs whose prior the forecast had

    @property
    def error(self) -> float:
        """(predicted - actual) / actual."""
        return (self.predicted_j - self.actual_j) / self.actual_j

    @property
    def covered(self) -> bool | None:
        if self.low_j is None or self.high_j is None:
            return None
        return self.low_j <= self.actual_j <= self.high_j

    @property
    def width(self) -> float | None:
        """(high - low) / actual, None without an interval."""
        if self.low_j is None or self.high_j is None:
            return None
        return (self.high_j - self.low_j) / self.actual_j


def epoch_series(
    run: Mapping[str, Any], min_epochs: int = 2
) -> tuple[list[float], list[float] | None] | None:
    """(joules of each epoch window, backward FLOPs of every planned epoch or None), or None
    with fewer than ``min_epochs`` epochs or an epoch nothing measured.

    The FLOPs are the config's whole ``backward_flops_per_epoch`` plan (every epoch of the
    run, also those a probe did not train), else those the epochs logged."""
    reader = RunReader(run)
    epochs = [w for _, w in reader.windows() if w.get("name") == "epoch"]
    joules = [total_j(reader.mapping(w.get("energy"), "windows.energy")) for w in epochs]
    if len(joules) < min_epochs or any(j is None or not 0 < j < math.inf for j in joules):
        return None
    cfg = reader.config()
    plan = cfg.get("backward_flops_per_epoch")
    flops: list[float] | None = None
    if isinstance(plan, list) and len(plan) >= len(joules):
        flops = [reader.number(v, "config.backward_flops_per_epoch") for v in plan]
    else:
        by_epoch = {}
        for _, m in reader.metrics():
            epoch = reader.integer(m.get("epoch"), "metrics.epoch")
            value = reader.number(m.get("backward_flops_per_iter"), "metrics.flops", True)
            if epoch is not None and value is not None:
                by_epoch[epoch] = value
        flops = [by_epoch.get(i + 1) for i in range(len(joules))]
    if flops is None or any(f is None for f in flops):
        flops = None
    return [float(j) for j in joules], flops  # type: ignore[misc]


def replay(
    run: str,
    name: str,
    joules: Sequence[float],
    flops: Sequence[float] | None,
    fractions: Sequence[float] = FRACTIONS,
    job: str = "",
    prior: SiblingPrior | None = None,
) -> list[BacktestRow]:
    """Rows of one epoch series: the forecast after each fraction of its epochs (at least one
    seen, at least one to come) against the sum of all of them (with ``prior``: its
    siblings')."""
    total = len(joules)
    rows = []
    for fraction in fractions:
        seen = max(1, math.ceil(fraction * total - 1e-9))
        if seen >= total:
            continue
        made = forecast(joules[:seen], total, flops, prior)
        rows.append(
            BacktestRow(
                run=run,
                name=name,
                fraction=fraction,
                epochs_seen=seen,
                epochs=total,
                predicted_j=made.total_j,
                actual_j=math.fsum(joules),
                low_j=made.low_j,
                high_j=made.high_j,
                method=made.method,
                job=job,
                siblings=0 if prior is None else prior.siblings,
            )  # fmt: skip
        )
    return rows


def backtest_run(
    run: Mapping[str, Any],
    fractions: Sequence[float] = FRACTIONS,
    siblings: Sequence[Mapping[str, Any]] = (),
) -> list[BacktestRow]:
    """The run's rows, one per fraction that leaves at least one epoch seen and one to come;
    with the prior of ``siblings`` (finished runs) where any is usable. The job is the run's
    ``kind`` tag, else ``recorded``."""
    if run.get("status") != "finished":
        return []
    series = epoch_series(run)
    if series is None:
        return []
    joules, flops = series
    others = [s[0] for s in map(epoch_series, siblings) if s is not None]
    prior = sibling_prior(others, len(joules)) if others else None
    tags = run.get("tags") if isinstance(run.get("tags"), Mapping) else {}
    job = str(tags.get("kind") or "recorded")
    return replay(str(run.get("id")), str(run.get("name")), joules, flops, fractions, job, prior)


def siblings_of(
    run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], earlier: bool = True
) -> list[Mapping[str, Any]]:
    """The finished runs of ``runs`` with ``run``'s sibling key, other than ``run``; with
    ``earlier``, only those that ended before it started (ISO-8601 UTC times compare as
    text)."""
    key = sibling_key(run.get("command"), RunReader(run).config())
    started = str(run.get("started_at") or "")
    return [
        other for other in runs
        if other is not run and other.get("status") == "finished"
        and (not earlier or str(other.get("ended_at") or "~") <= started)
        and sibling_key(other.get("command"), RunReader(other).config()) == key
    ]  # fmt: skip


SIBLING_MODES = ("none", "earlier", "others")


def backtest(
    runs: Iterable[Mapping[str, Any]],
    fractions: Sequence[float] = FRACTIONS,
    *,
    siblings: str = "none",
) -> list[BacktestRow]:
    """Rows of every usable run (see :func:`backtest_run`); with ``siblings`` ``"earlier"`` or
    ``"others"``, each with the prior of its :func:`siblings_of`."""
    if siblings not in SIBLING_MODES:
        raise ValueError(f"siblings must be one of {SIBLING_MODES}, not {siblings!r}")
    runs = list(runs)
    if siblings == "none":
        return [row for run in runs for row in backtest_run(run, fractions)]
    earlier = siblings == "earlier"
    return [
        row for run in runs
        for row in backtest_run(run, fractions, siblings_of(run, runs, earlier))
    ]  # fmt: skip


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); (nan, nan) for no
    trials."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(rows: Sequence[BacktestRow]) -> list[dict[str, Any]]:
    """Per fraction: forecasts, median and worst absolute error, how many intervals held the
    actual total (coverage, with its Wilson interval), the median width / actual total."""
    out = []
    for fraction in sorted({r.fraction for r in rows}):
        these = [r for r in rows if r.fraction == fraction]
        errors = [abs(r.error) for r in these]
        judged = [r.covered for r in these if r.covered is not None]
        widths = [r.width for r in these if r.width is not None]
        covered = sum(judged)
        low, high = wilson(covered, len(judged))
        out.append({
            "fraction": fraction, "runs": len(these),
            "epochs_seen": sorted({r.epochs_seen for r in these}),
            "median_abs_error": statistics.median(errors), "max_abs_error": max(errors),
            "covered": covered, "with_interval": len(judged),
            "coverage": covered / len(judged) if judged else math.nan,
            "coverage_low": low, "coverage_high": high,
            "median_width": statistics.median(widths) if widths else math.nan,
        })  # fmt: skip
    return out


def _seen(epochs: list[int]) -> str:
    return ",".join(map(str, epochs)) if len(epochs) <= 4 else f"{epochs[0]}-{epochs[-1]}"


def summary_table(rows: Sequence[BacktestRow]) -> list[str]:
    """The per-fraction summary as Markdown table lines."""
    lines = ["| after | forecasts | epochs seen | 95% interval held | coverage (95% Wilson) "
             "| median width | median abs. error | worst |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in summarize(rows):
        held = f"{s['covered']}/{s['with_interval']}" if s["with_interval"] else "no interval"
        cover = "-"
        if s["with_interval"]:
            cover = f"{s['coverage']:.1%} ({s['coverage_low']:.1%}-{s['coverage_high']:.1%})"
        width = "-" if math.isnan(s["median_width"]) else f"{s['median_width']:.1%}"
        lines.append(
            f"| {s['fraction']:.0%} | {s['runs']} | {_seen(s['epochs_seen'])} | {held} | {cover} "
            f"| {width} | {s['median_abs_error']:.1%} | {s['max_abs_error']:.1%} |"
        )
    return lines


def markdown(rows: Sequence[BacktestRow], title: str, *, per_run: bool = True) -> str:
    """A summary table and (``per_run``) one row per run and fraction."""
    lines = [f"**{title}**", "", *summary_table(rows)]
    if per_run:
        lines += ["", "| run | after | seen/epochs | predicted J | actual J | error "
                  "| 95% interval |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            interval = "-" if r.low_j is None else f"{r.low_j:.1f}-{r.high_j:.1f}"
            lines.append(
                f"| {r.name.replace('|', '/')} | {r.fraction:.0%} | {r.epochs_seen}/{r.epochs} "
                f"| {r.predicted_j:.1f} | {r.actual_j:.1f} | {r.error:+.1%} | {interval} |"
            )
    return "\n".join(lines) + "\n"

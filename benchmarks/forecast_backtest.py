"""Back-test greentrain's energy forecast: coverage of its 95% interval, width and error at each
fraction of a run, on recorded runs and on synthetic jobs built from measured epochs.

Recorded runs (``STORE`` arguments): every finished run with two or more measured epochs; the
forecast is replayed as made after each fraction of its epochs and scored against the energy
all its epochs took (``greentrain.report.backtest``).

Synthetic jobs (``--synthetic``): epoch series built from the *measured* epoch energies of the
recorded runs of ``--noise-from`` (their epoch-to-epoch variation on a shared machine, kept in
blocks of 5 consecutive epochs so that its autocorrelation survives), times an explicit drift
model per kind of job (:data:`KINDS`), for several run lengths and seeds. The truth of each
series is known, so each forecast is scored exactly. ``--noise-floor`` adds the widths of an
oracle that knows each job's drift and estimates only its level (:func:`oracle_widths`): what
the measured variation alone costs. Prints Markdown::

    python benchmarks/forecast_backtest.py reports/forecast-backtest/sweeps-digits-20ep.db
    python benchmarks/forecast_backtest.py --synthetic \\
        --noise-from reports/forecast-backtest/sweeps-digits-20ep.db --seeds 10 --noise-floor
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from greentrain.errors import GreentrainError
from greentrain.record.siblings import sibling_prior
from greentrain.report.backtest import (
    BacktestRow,
    backtest,
    epoch_series,
    markdown,
    replay,
)
from greentrain.report.backtest_tables import report, sibling_comparison
from greentrain.store import Store

LENGTHS = (8, 12, 20, 30, 50)  # epochs per synthetic run
FRACTIONS = (0.10, 0.25, 0.50, 0.75, 0.90)
DENSE_FLOPS, SPARSE_FLOPS = 8.9e9, 1.81e9  # resnet18/digits backward FLOPs per iteration
BLOCK = 5  # epochs per block of measured variation


def _growth(n: int) -> float:
    """Per-epoch growth of the "growing" kind: 15% for 8 epochs (issue 22's job), less for
    longer runs so the last epoch costs 2.7x to 3.2x the first."""
    return {8: 0.15, 12: 0.10, 20: 0.06, 30: 0.04}.get(n, 0.025)


def _contention(n: int, rng: random.Random) -> list[float]:
    """A shared machine: another job comes and goes (two-state Markov chain, 15% chance of a
    switch per epoch), costing +40% while it runs."""
    busy, out = rng.random() < 0.3, []
    for _ in range(n):
        out.append(1.4 if busy else 1.0)
        if rng.random() < 0.15:
            busy = not busy
    return out


# kind -> (base joules of each epoch for n epochs, FLOPs plan or None)
Drift = Callable[[int, random.Random], tuple[list[float], list[float] | None]]
KINDS: dict[str, Drift] = {
    "dense": lambda n, rng: ([50.0] * n, None),
    "constant 0.8": lambda n, rng: ([35.0] * n, [SPARSE_FLOPS] * n),
    "bar 0.8": lambda n, rng: (
        [54.0 if i % 2 == 0 else 33.0 for i in range(n)],
        [DENSE_FLOPS if i % 2 == 0 else SPARSE_FLOPS for i in range(n)],
    ),
    "growing": lambda n, rng: ([40.0 * (1 + _growth(n)) ** i for i in range(n)], None),
    "growing linearly": lambda n, rng: ([40.0 * (1 + 0.03 * i) for i in range(n)], None),
    "shrinking": lambda n, rng: ([60.0 * 0.98**i for i in range(n)], None),
    "slow first epoch": lambda n, rng: ([75.0] + [50.0] * (n - 1), None),
    "contended machine": lambda n, rng: ([50.0 * c for c in _contention(n, rng)], None),
}


def measured_variation(paths: Sequence[str], scale: float = 1.0) -> list[list[float]]:
    """Each recorded run's epoch energies divided by its level (the mean of its epochs with the
    same FLOPs): measured multiplicative variation around 1, its logs times ``scale`` (1: as
    measured; 0.5: a machine half as noisy)."""
    out = []
    for path in paths:
        store = Store(path, create=False, read_only=True)
        for listed in store.list_runs(status="finished"):
            series = epoch_series(store.get_run(listed["id"]))
            if series is None or len(series[0]) < 2 * BLOCK:
                continue
            joules, flops = series
            keys = flops if flops is not None else [0.0] * len(joules)
            level = {k: sum(j for j, f in zip(joules, keys, strict=True) if f == k)
                     / keys.count(k) for k in set(keys)}  # fmt: skip
            out.append([(j / level[f]) ** scale for j, f in zip(joules, keys, strict=True)])
    return out


def variation_table(paths: Sequence[str]) -> list[str]:
    """Markdown: each finished recorded run's epoch seconds (median of its epoch windows) and
    epoch-to-epoch variation -- the standard deviation and lag-1 autocorrelation of its log
    joules about a least-squares level, FLOPs and trend (the first epoch left out): is the
    variation the synthetic jobs are built from like that of other real jobs?"""
    import numpy as np

    lines = ["| store | job | epochs | epoch s (median) | log sd | lag-1 autocorrelation |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for path in paths:
        store = Store(path, create=False, read_only=True)
        for listed in store.list_runs(status="finished"):
            run = store.get_run(listed["id"])
            series = epoch_series(run, min_epochs=6)
            if series is None:
                continue
            joules, flops = series
            logs = np.log(joules[1:])
            cols = [np.ones(len(logs)), np.arange(len(logs), dtype=float)]
            if flops is not None and len(set(flops[1 : len(joules)])) > 1:
                cols.append(np.asarray(flops[1 : len(joules)], dtype=float) / max(flops))
            x = np.column_stack(cols)
            resid = logs - x @ np.linalg.lstsq(x, logs, rcond=None)[0]
            sd = float(np.sqrt(resid @ resid / (len(logs) - x.shape[1])))
            lag1 = float(resid[1:] @ resid[:-1] / (resid @ resid)) + x.shape[1] / len(logs)
            seconds = statistics.median(
                float(w.get("duration_s") or 0) for w in run["windows"] if w["name"] == "epoch"
            )
            tags = run.get("tags") or {}
            job = tags.get("kind") or str(run.get("name"))[-40:]
            lines.append(f"| {Path(path).name} | {job} | {len(joules)} | {seconds:.1f} "
                         f"| {sd:.3f} | {lag1:+.2f} |")  # fmt: skip
    return lines


def noise(variation: list[list[float]], n: int, rng: random.Random) -> list[float]:
    """``n`` multipliers: blocks of :data:`BLOCK` consecutive measured epochs, each from a
    random recorded run and position."""
    out: list[float] = []
    while len(out) < n:
        source = rng.choice(variation)
        start = rng.randrange(0, len(source) - BLOCK + 1)
        out.extend(source[start : start + BLOCK])
    return out[:n]


def synthetic_rows(
    variation: list[list[float]], seeds: int, fractions: Sequence[float] = FRACTIONS,
    siblings: bool = False,
) -> list[BacktestRow]:  # fmt: skip
    """Replay the forecast on every kind x length x seed (see the module docstring); with
    ``siblings``, each seed's forecast has the prior of the kind and length's earlier seeds
    (seed 0 none)."""
    rows = []
    for kind, drift in KINDS.items():
        for n in LENGTHS:
            series = []
            for seed in range(seeds):
                rng = random.Random(f"{kind}/{n}/{seed}")
                base, flops = drift(n, rng)
                joules = [b * u for b, u in zip(base, noise(variation, n, rng), strict=True)]
                prior = sibling_prior(series, n) if siblings and series else None
                series.append(joules)
                name = f"{kind} {n}ep s{seed}"
                rows += replay(name, name, joules, flops, fractions, kind, prior)
    return rows


def _oracle_total(joules: list[float], base: list[float], seen: int, trend: bool) -> float:
    """The oracle's forecast of the total after ``seen`` epochs: the level (joules over base)
    from the epochs seen; with ``trend``, also a straight line in log joules about the base
    (least squares), which the oracle must allow for as it does not know the drift is exact."""
    if not trend:
        level = sum(joules[:seen]) / sum(base[:seen])
        return sum(joules[:seen]) + level * sum(base[seen:])
    logs = [math.log(j / b) for j, b in zip(joules[:seen], base[:seen], strict=True)]
    mean_t, mean_y = (seen - 1) / 2, statistics.fmean(logs)
    slope = sum((t - mean_t) * (y - mean_y) for t, y in enumerate(logs)) / sum(
        (t - mean_t) ** 2 for t in range(seen)
    )
    return sum(joules[:seen]) + sum(
        b * math.exp(mean_y + slope * (t - mean_t)) for t, b in enumerate(base) if t >= seen
    )


def oracle_widths(
    variation: list[list[float]], fraction: float, draws: int = 400, trend: bool = False
) -> dict[tuple[str, int], float]:
    """The noise floor: per kind and length, the width (over the actual total) of the central
    95% of the errors of an *oracle* that knows the job's drift exactly (its base series) and
    the noise's distribution, and estimates only the level from the epochs seen (their joules
    over their base), after ``fraction`` of the run, over ``draws`` noise draws. A forecast
    that must also find out whether and how the job drifts cannot be narrower on average.

    With ``trend`` the oracle also fits a straight line in log joules about the base (so it
    knows the drift only up to such a line, from three epochs seen): what allowing a job an
    unknown steady drift costs, the rest known (lengths with fewer epochs seen are left out)."""
    out = {}
    for kind, drift in KINDS.items():
        for n in LENGTHS:
            seen = max(1, math.ceil(fraction * n - 1e-9))
            if seen >= n or (trend and seen < 3):  # nothing to come, or no line to fit
                continue
            errors = []
            for draw in range(draws):
                rng = random.Random(f"oracle/{kind}/{n}/{draw}")
                base, _ = drift(n, rng)
                joules = [b * u for b, u in zip(base, noise(variation, n, rng), strict=True)]
                errors.append(_oracle_total(joules, base, seen, trend) / sum(joules) - 1)
            errors.sort()
            out[kind, n] = errors[int(0.975 * draws) - 1] - errors[int(0.025 * draws)]
    return out


def noise_floor(variation: list[list[float]], fractions: Sequence[float]) -> list[str]:
    """Markdown: per fraction, the median and range over kinds and lengths of
    :func:`oracle_widths`, the median over lengths for each kind, and the median width of
    the oracle that must allow for a steady drift (``trend``)."""
    lines = ["Noise floor: 95% width of an oracle that knows each job's drift and estimates "
             "only its level (400 draws per kind and length), and of one that knows the drift "
             "only up to a straight line in log joules, which it fits (from 3 epochs seen):",
             "",
             "| after | median width | range | flat jobs (dense), by length "
             "| allowing a steady drift: median width |",
             "|---|---|---|---|---|"]  # fmt: skip
    for fraction in fractions:
        widths = oracle_widths(variation, fraction)
        flat = ", ".join(
            f"{n}: {widths['dense', n]:.1%}" for n in LENGTHS if ("dense", n) in widths
        )
        values = list(widths.values())
        with_trend = list(oracle_widths(variation, fraction, trend=True).values())
        trend = f"{statistics.median(with_trend):.1%}" if with_trend else "-"
        lines.append(f"| {fraction:.0%} | {statistics.median(values):.1%} "
                     f"| {min(values):.1%}-{max(values):.1%} | {flat} | {trend} |")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stores", nargs="*", help="store files whose runs to replay")
    parser.add_argument("--at", default=",".join(map(str, FRACTIONS)),
                        help="fractions of the run's epochs seen")  # fmt: skip
    parser.add_argument("--synthetic", action="store_true", help="also the synthetic jobs")
    parser.add_argument("--noise-from", action="append", default=[],
                        help="stores whose measured epochs to build on")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="synthetic runs per kind and length")
    parser.add_argument("--variation-scale", type=float, default=1.0,
                        help="scale the measured logs (0.5: half as noisy)")  # fmt: skip
    parser.add_argument("--per-run", action="store_true", help="one row per recorded forecast")
    parser.add_argument("--variation", action="store_true",
                        help="also each recorded run's epoch seconds and variation")  # fmt: skip
    parser.add_argument("--siblings", action="store_true",
                        help="also with the prior of each run's sibling runs: those finished "
                        "before it ('earlier'), and all the others ('others')")  # fmt: skip
    parser.add_argument("--noise-floor", action="store_true",
                        help="also the widths of an oracle knowing each job's drift")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        fractions = [float(f) for f in args.at.split(",")]
    except ValueError:
        parser.error(f"--at takes comma-separated fractions, e.g. 0.1,0.25 (got {args.at!r})")
    if not all(0 < f < 1 for f in fractions):
        parser.error("--at fractions must lie between 0 and 1")
    if args.synthetic and not args.noise_from:
        parser.error("--synthetic needs --noise-from STORE (measured epochs to build on)")
    try:
        if args.variation and args.stores:
            print("Epoch-to-epoch variation of the recorded runs:\n")
            print("\n".join(variation_table(args.stores)) + "\n")
        combined: dict[str, list[BacktestRow]] = {"none": [], "earlier": [], "others": []}
        for path in args.stores:  # siblings are looked for within each store
            store = Store(path, create=False, read_only=True)
            runs = [store.get_run(r["id"]) for r in store.list_runs()]
            rows = backtest(runs, fractions)
            combined["none"] += rows
            title = f"{Path(path).name}: {len(rows)} forecasts of {len(runs)} runs"
            print(markdown(rows, title, per_run=args.per_run) if args.per_run
                  else report(rows, title + ", without sibling runs"))  # fmt: skip
            for mode in ("earlier", "others") if args.siblings else ():
                with_prior = backtest(runs, fractions, siblings=mode)
                combined[mode] += with_prior
                print(sibling_comparison(rows, with_prior, f"{Path(path).name} ({mode} "
                                         "siblings)"))  # fmt: skip
        if len(args.stores) > 1:
            rows = combined["none"]
            print(report(rows, f"all recorded runs: {len(rows)} forecasts of "
                         f"{len({r.run for r in rows})} runs, without sibling runs"))  # fmt: skip
            for mode in ("earlier", "others") if args.siblings else ():
                print(sibling_comparison(rows, combined[mode], f"all recorded runs ({mode} "
                                         "siblings)"))  # fmt: skip
        if args.synthetic:
            variation = measured_variation(args.noise_from, args.variation_scale)
            if not variation:
                print("error: no recorded run with 10 or more measured epochs", file=sys.stderr)
                return 1
            rows = synthetic_rows(variation, args.seeds, fractions)
            jobs = len({r.run for r in rows})
            print(report(rows, f"synthetic: {len(rows)} forecasts of {jobs} runs ({len(KINDS)} "
                         f"kinds x lengths {LENGTHS} x {args.seeds} seeds; measured variation's "
                         f"logs x {args.variation_scale:g}), without sibling runs"))  # fmt: skip
            if args.siblings:
                with_prior = synthetic_rows(variation, args.seeds, fractions, siblings=True)
                print(sibling_comparison(rows, with_prior, "synthetic"))
            if args.noise_floor:
                print("\n" + "\n".join(noise_floor(variation, fractions)))
    except GreentrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

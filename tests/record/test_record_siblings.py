"""The sibling-run prior of the energy forecast, on synthetic series whose truth is known: the
shape, variation and drift spread it learns from finished runs of the same configuration, the
coverage it keeps on many simulated runs and the width it saves, and the match rule."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest

from greentrain.record.forecast import forecast
from greentrain.record.siblings import MIN_SIBLINGS, epoch_joules, sibling_key, sibling_prior
from greentrain.report.backtest import backtest, siblings_of


def _ar1(n: int, rho: float, sigma: float, rng: random.Random) -> list[float]:
    """An AR(1) series with lag-1 autocorrelation ``rho`` and marginal deviation ``sigma``."""
    out, value = [], rng.gauss(0, sigma)
    for _ in range(n):
        out.append(value)
        value = rho * value + rng.gauss(0, sigma * math.sqrt(1 - rho * rho))
    return out


def _job(n: int, rng: random.Random, sigma: float = 0.08, rho: float = 0.3) -> list[float]:
    """One run of a job with a known shape -- a slow first epoch, then 4% dearer each epoch --
    at its own level (runs differ by up to +-20%) with AR(1) variation in logs."""
    level = 50.0 * math.exp(rng.uniform(-0.2, 0.2))
    shape = [1.5] + [1.04**t for t in range(1, n)]
    return [level * s * math.exp(u) for s, u in zip(shape, _ar1(n, rho, sigma, rng), strict=True)]


def _scored(n: int, seen: int, siblings: int, runs: int, seed: str) -> list[tuple[bool, float]]:
    """(interval held the truth, width over the truth) of ``runs`` simulated forecasts after
    ``seen`` of ``n`` epochs, each with the prior of ``siblings`` fresh runs (0: none)."""
    rng = random.Random(seed)
    out = []
    for _ in range(runs):
        joules = _job(n, rng)
        prior = sibling_prior([_job(n, rng) for _ in range(siblings)], n) if siblings else None
        made = forecast(joules[:seen], n, prior=prior)
        truth = sum(joules)
        out.append((made.low_j <= truth <= made.high_j, (made.high_j - made.low_j) / truth))
    return out


@pytest.mark.slow
def test_with_sibling_runs_the_interval_holds_the_truth_about_95_times_in_100():
    scored = _scored(n=20, seen=10, siblings=4, runs=300, seed="coverage")
    held = sum(h for h, _ in scored)
    # 95% of 300 is 285; a binomial's 3-sigma band is +-11.3: the interval keeps its promise
    assert 270 <= held <= 297, held


@pytest.mark.slow
def test_sibling_runs_narrow_the_interval_of_a_drifting_job():
    alone = statistics.median(w for _, w in _scored(20, 10, 0, 100, "width"))
    with_siblings = statistics.median(w for _, w in _scored(20, 10, 4, 100, "width"))
    assert with_siblings < 0.6 * alone, (with_siblings, alone)


def test_the_prior_learns_the_shape_the_variation_and_its_correlation():
    rng = random.Random(3)
    runs = [_job(30, rng, sigma=0.1, rho=0.3) for _ in range(40)]
    prior = sibling_prior(runs, 30)
    assert prior is not None and prior.siblings == 40
    # the profile: the first epoch 1.5x, then 4% per epoch (in logs, up to the mean level)
    steps = [b - a for a, b in zip(prior.offset[1:], prior.offset[2:], strict=False)]
    assert statistics.mean(steps) == pytest.approx(math.log(1.04), abs=0.004)
    assert prior.offset[0] - prior.offset[1] == pytest.approx(math.log(1.5 / 1.04), abs=0.05)
    assert math.sqrt(prior.variance) == pytest.approx(0.1, rel=0.15)
    assert prior.rho == pytest.approx(0.3, abs=0.1)
    assert prior.slope_variance < 1e-4  # every run drifts alike


def test_the_prior_learns_how_far_the_levels_of_sibling_runs_lie_apart():
    rng = random.Random(4)
    apart = sibling_prior([_job(20, rng) for _ in range(40)], 20)  # levels within +-20%
    # a uniform(-0.2, 0.2) log level varies by 0.4^2 / 12; a run against all 40: (1 + 1/40)
    assert apart.level_variance == pytest.approx(0.4**2 / 12 * (1 + 1 / 40), rel=0.4)
    alike = [[50.0 * math.exp(u) for u in _ar1(20, 0.3, 0.05, rng)] for _ in range(40)]
    assert sibling_prior(alike, 20).level_variance < 0.1 * apart.level_variance


def test_the_level_prior_narrows_a_run_like_its_siblings_and_frees_a_run_unlike_them():
    rng = random.Random(6)
    siblings = [[50.0 * math.exp(u) for u in _ar1(20, 0.3, 0.05, rng)] for _ in range(6)]
    prior = sibling_prior(siblings, 20)
    free = dataclasses.replace(prior, level_variance=math.nan)  # the level from the run alone
    like = [50.0 * math.exp(u) for u in _ar1(20, 0.3, 0.05, rng)]
    narrow, wide = forecast(like[:5], 20, prior=prior), forecast(like[:5], 20, prior=free)
    assert narrow.high_j - narrow.low_j < 0.8 * (wide.high_j - wide.low_j)
    assert narrow.low_j <= sum(like) <= narrow.high_j
    unlike = [v * 1.3 for v in like]  # the same job on a node 30% dearer
    made = forecast(unlike[:5], 20, prior=prior)
    assert made.total_j == pytest.approx(sum(unlike), rel=0.05)  # not pulled to the siblings'
    assert made.low_j <= sum(unlike) <= made.high_j


def test_siblings_that_drift_apart_leave_the_trend_in_the_forecast():
    rng = random.Random(5)
    slopes = [-0.04, 0.04] * 3  # half the runs 4% cheaper each epoch, half 4% dearer
    apart = [[50.0 * math.exp(b * t + rng.gauss(0, 0.01)) for t in range(20)] for b in slopes]
    prior = sibling_prior(apart, 20)
    # a run's slope against the mean of the 6 varies by 0.04^2 (1 + 1/6)... about
    assert prior.slope_variance == pytest.approx(0.04**2, rel=0.5)
    alike = [[50.0 * 1.03**t * math.exp(rng.gauss(0, 0.01)) for t in range(20)]
             for _ in range(6)]  # fmt: skip
    assert sibling_prior(alike, 20).slope_variance == 0.0
    assert "trend" in forecast(apart[0][:8], 20, prior=prior).method
    assert "trend" not in forecast(alike[0][:8], 20, prior=sibling_prior(alike, 20)).method


def test_a_bar_schedule_and_a_slow_first_epoch_come_from_the_siblings_after_one_epoch():
    shape = [80.0] + [54.0 if t % 2 == 0 else 33.0 for t in range(1, 12)]
    rng = random.Random(7)
    siblings = [[v * math.exp(rng.gauss(0, 0.02)) for v in shape] for _ in range(3)]
    run = [v * 1.1 for v in shape]  # the same job on a machine 10% dearer
    made = forecast(run[:1], 12, prior=sibling_prior(siblings, 12))
    assert "profile of 3 sibling runs" in made.method
    assert made.total_j == pytest.approx(sum(run), rel=0.05)
    assert made.low_j <= sum(run) <= made.high_j  # an interval after one epoch: the siblings'
    assert forecast(run[:1], 12).low_j is None  # without them, one epoch gives none


def test_too_few_or_too_short_siblings_give_no_prior():
    assert MIN_SIBLINGS == 2
    assert sibling_prior([[10.0] * 8], 8) is None  # one sibling
    assert sibling_prior([[10.0] * 5, [11.0] * 5, [12.0] * 8], 8) is None  # two too short
    assert sibling_prior([[10.0] * 8, [11.0, math.nan] + [11.0] * 6], 8) is None
    prior = sibling_prior([[10.0] * 10, [12.0] * 9], 8)  # longer ones are cut
    assert len(prior.offset) == 8
    made = forecast([10.0, 10.5, 10.2], 12, prior=prior)  # a prior for 8 epochs: not used
    assert "sibling" not in made.method


def test_siblings_are_the_same_command_and_config_but_for_seed_name_tags_and_store():
    config = {"model": "resnet18", "drop": 0.8, "epochs": 12, "seed": 0, "name": "a",
              "tags": {"point": "seed=0"}, "store": "x.db"}  # fmt: skip
    command = ["greentrain", "train", "--drop", "0.8", "--seed", "0", "--name", "a"]
    other_seed = {**config, "seed": 3, "name": "b", "tags": {"point": "seed=3"}, "store": "y"}
    assert sibling_key(command, config) == sibling_key(
        ["greentrain", "train", "--drop", "0.8", "--seed=3", "--name", "b"], other_seed
    )
    assert sibling_key(command, config) != sibling_key(command, {**config, "drop": 0.5})
    assert sibling_key(command, config) != sibling_key(command, {**config, "epochs": 20})
    assert sibling_key(command, config) != sibling_key(["python", "other.py"], config)


def _run(run_id, joules, seed, started, ended, status="finished"):
    windows = [{"name": "epoch", "index": i, "energy": {"cpu": {"energy_j": j}}}
               for i, j in enumerate(joules)]  # fmt: skip
    return {"id": run_id, "name": run_id, "status": status, "windows": windows, "metrics": [],
            "config": {"epochs": len(joules), "seed": seed}, "command": ["job", "--seed", seed],
            "started_at": started, "ended_at": ended, "tags": {"kind": "dense"}}  # fmt: skip


def test_the_backtest_gives_a_run_the_prior_of_the_siblings_finished_before_it_started():
    rng = random.Random(11)
    runs = [
        _run(f"s{i}", [40.0 * math.exp(rng.gauss(0, 0.05)) for _ in range(12)], str(i),
             f"2026-01-01T0{i}:00:00Z", f"2026-01-01T0{i}:30:00Z")
        for i in range(4)
    ]  # fmt: skip
    runs.append(_run("failed", [40.0] * 12, "9", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z",
                     status="failed"))  # fmt: skip
    assert [r["id"] for r in siblings_of(runs[2], runs)] == ["s0", "s1"]
    assert [r["id"] for r in siblings_of(runs[0], runs, earlier=False)] == ["s1", "s2", "s3"]
    rows = backtest(runs, fractions=[0.5], siblings="earlier")
    assert {r.run: r.siblings for r in rows} == {"s0": 0, "s1": 0, "s2": 2, "s3": 3}
    assert all(r.job == "dense" for r in rows)
    assert {r.siblings for r in backtest(runs, [0.5], siblings="others")} == {3}
    with pytest.raises(ValueError, match="siblings must be one of"):
        backtest(runs, [0.5], siblings="all")


def test_a_forecast_says_how_many_sibling_runs_its_prior_came_from():
    rng = random.Random(5)
    prior = sibling_prior([_job(12, rng) for _ in range(4)], 12)
    mine = _job(12, rng)
    with_prior = forecast(mine[:4], 12, prior=prior)
    assert with_prior.siblings == 4 and with_prior.to_dict()["siblings"] == 4
    assert forecast(mine[:4], 12).siblings == 0
    assert forecast(mine[:4], 20, prior=prior).siblings == 0  # the prior covers 12 epochs only
    assert forecast(mine, 12, prior=prior).siblings == 4  # the last forecast: nothing to come


def test_epoch_joules_are_the_best_figures_of_each_epoch_window_or_none():
    def window(name, **energy):
        return {"name": name, "energy": {d: {"energy_j": j} for d, j in energy.items()}}

    run = {"windows": [window("epoch", gpu=3.0, cpu=1.0), window("eval", gpu=9.0),
                       window("epoch", gpu=2.0)]}  # fmt: skip
    assert epoch_joules(run) == [4.0, 2.0]
    run["windows"].append({"name": "epoch", "energy": {"gpu": {"energy_j": None}}})
    assert epoch_joules(run) is None  # an epoch nothing measured: no series
    assert epoch_joules({"windows": []}) is None and epoch_joules({}) is None

"""The forecast back-test replays forecasts on recorded runs and scores them exactly."""

from __future__ import annotations

import pytest

from greentrain.record.forecast import forecast
from greentrain.report.backtest import (
    backtest,
    backtest_run,
    markdown,
    replay,
    summarize,
    wilson,
)


def _run(epoch_j, *, flops=None, plan=None, status="finished", run_id="r1"):
    windows = [{"name": "epoch", "index": i, "energy": {"cpu": {"energy_j": j}, "gpu": None}}
               for i, j in enumerate(epoch_j)]  # fmt: skip
    windows.append({"name": "eval", "energy": {"cpu": {"energy_j": 1e6}}})  # not an epoch
    metrics = [{"epoch": i + 1, "backward_flops_per_iter": f} for i, f in enumerate(flops or [])]
    config = {"epochs": len(epoch_j)}
    if plan is not None:
        config["backward_flops_per_epoch"] = plan
    return {"id": run_id, "name": run_id, "status": status, "windows": windows,
            "metrics": metrics, "config": config}  # fmt: skip


def test_the_forecast_after_a_fraction_of_epochs_is_scored_against_all_epochs():
    joules = [10.0, 12.0, 11.0, 13.0] + [11.0] * 16  # 20 epochs
    rows = backtest_run(_run(joules))
    assert [(r.fraction, r.epochs_seen) for r in rows] == [(0.1, 2), (0.25, 5), (0.5, 10),
                                                           (0.75, 15)]  # fmt: skip
    first = rows[0]
    made = forecast(joules[:2], 20)
    assert first.predicted_j == pytest.approx(made.total_j)
    assert first.actual_j == pytest.approx(sum(joules))
    assert first.error == pytest.approx((made.total_j - first.actual_j) / first.actual_j)
    assert first.width == pytest.approx((made.high_j - made.low_j) / first.actual_j)
    assert first.covered is True


def test_a_bar_schedule_is_replayed_with_the_logged_flops_per_epoch():
    flops = [100.0, 20.0] * 6
    joules = [5.0 + 0.1 * f for f in flops]
    (row,) = backtest_run(_run(joules, flops=flops), fractions=[0.25])
    assert row.epochs_seen == 3 and "FLOPs" in row.method
    assert row.error == pytest.approx(0.0, abs=1e-12)
    (planned,) = backtest_run(_run(joules, plan=flops), fractions=[0.25])
    assert planned.predicted_j == pytest.approx(row.predicted_j)


def test_unusable_runs_are_left_out_not_scored_as_zero():
    assert backtest_run(_run([10.0, 11.0], status="failed")) == []
    assert backtest_run(_run([10.0])) == []  # one epoch: nothing to forecast
    assert backtest_run(_run([10.0, None, 12.0])) == []  # an epoch nobody measured
    assert backtest_run(_run([10.0, float("nan"), 12.0])) == []


def test_the_summary_counts_errors_and_interval_coverage_per_fraction():
    runs = [_run([10.0, 11.0, 12.0, 10.0], run_id="a"), _run([5.0, 5.0, 9.0, 5.0], run_id="b")]
    rows = backtest(runs, fractions=[0.5])
    (summary,) = summarize(rows)
    assert summary["runs"] == 2 and summary["epochs_seen"] == [2]
    assert summary["max_abs_error"] == pytest.approx(max(abs(r.error) for r in rows))
    assert summary["covered"] + (summary["with_interval"] - summary["covered"]) == 2
    widths = [r.width for r in rows]
    assert summary["median_width"] == pytest.approx(sum(widths) / 2)  # the median of two
    low, high = wilson(summary["covered"], 2)
    assert (summary["coverage_low"], summary["coverage_high"]) == (low, high)
    text = markdown(rows, "t")
    assert "| 50% | 2 | 2 |" in text and "| a | 50% | 2/4 |" in text


@pytest.mark.parametrize(
    ("held", "trials", "low", "high"),
    [(4, 6, 0.300, 0.903), (6, 6, 0.610, 1.0), (0, 5, 0.0, 0.434), (190, 200, 0.910, 0.973)],
)
def test_the_wilson_interval_matches_its_published_values(held, trials, low, high):
    got = wilson(held, trials)
    assert got == pytest.approx((low, high), abs=1e-3)


def test_replay_scores_any_series_and_leaves_out_fractions_with_nothing_to_come():
    rows = replay("s", "synthetic", [10.0, 11.0, 12.0, 13.0], None, (0.25, 0.5, 0.99), job="x")
    assert [r.epochs_seen for r in rows] == [1, 2]  # 99% of 4 epochs leaves none to come
    assert rows[0].covered is None and rows[0].width is None  # one epoch: no interval
    assert all(r.job == "x" for r in rows)


def _benchmark():
    """benchmarks/forecast_backtest.py, which is a script, not a package module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "forecast_backtest.py"
    spec = importlib.util.spec_from_file_location("forecast_backtest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_noise_floor_oracle_is_exact_without_noise_and_narrows_as_the_run_goes_on():
    import random
    import statistics

    bench = _benchmark()
    assert set(bench.oracle_widths([[1.0] * 10], 0.5, draws=20).values()) == {0.0}
    rng = random.Random(1)
    noisy = [[rng.lognormvariate(0, 0.1) for _ in range(20)] for _ in range(4)]
    early = bench.oracle_widths(noisy, 0.25, draws=40)
    late = bench.oracle_widths(noisy, 0.75, draws=40)
    assert len(early) == len(bench.KINDS) * len(bench.LENGTHS)
    assert 0 < statistics.median(late.values()) < statistics.median(early.values())


def test_the_oracle_allowing_a_steady_drift_is_exact_without_noise_and_wider_than_level_only():
    import random
    import statistics

    bench = _benchmark()
    exact = bench.oracle_widths([[1.0] * 10], 0.5, draws=20, trend=True)
    assert max(exact.values()) < 1e-9  # the base is known: a zero slope is fitted exactly
    rng = random.Random(2)
    noisy = [[rng.lognormvariate(0, 0.1) for _ in range(20)] for _ in range(4)]
    level = bench.oracle_widths(noisy, 0.5, draws=40)
    drift = bench.oracle_widths(noisy, 0.5, draws=40, trend=True)
    assert set(drift) <= set(level)  # lengths with under 3 epochs seen are left out
    assert statistics.median(drift.values()) > statistics.median(level[k] for k in drift)
    lines = bench.noise_floor(noisy, (0.1, 0.5))
    assert lines[-1].count("|") == 6 and lines[-1].rstrip(" |").endswith("%")


def test_the_sibling_comparison_sets_forecasts_with_the_prior_beside_the_same_without():
    from greentrain.record.siblings import sibling_prior
    from greentrain.report.backtest_tables import by_siblings, sibling_comparison

    runs = [[10.0, 11.0, 10.5, 10.2, 10.8, 10.4, 10.6, 10.1] for _ in range(3)]
    prior = sibling_prior(runs[:2], 8)
    without = replay("c", "c", runs[2], None, (0.5,), job="dense")
    with_prior = replay("c", "c", runs[2], None, (0.5,), job="dense", prior=prior)
    assert with_prior[0].siblings == 2 and without[0].siblings == 0
    text = sibling_comparison(without, with_prior, "t")
    assert "the 1 runs with sibling runs: 1 forecasts with the siblings' prior" in text
    assert "The same forecasts without the siblings' prior" in text
    assert "| 2-4 | 1/1, width" in "\n".join(by_siblings(with_prior))
    assert "no run had a sibling" in sibling_comparison(without, without, "t")

"""Forecasts of a run's total energy on synthetic epoch series whose truth is known: steady,
bar-scheduled, drifting (geometric and linear growth, shrinking) and correlated."""

from __future__ import annotations

import math
import random

import pytest

from greentrain.record.epoch_models import RHO_PRIOR, lag1_autocorrelation
from greentrain.record.forecast import MIN_HALF_WIDTH, forecast


def _ar1(n: int, rho: float, sigma: float, rng: random.Random) -> list[float]:
    """An AR(1) series with lag-1 autocorrelation ``rho`` and marginal deviation ``sigma``."""
    out, value = [], rng.gauss(0, sigma)
    for _ in range(n):
        out.append(value)
        value = rho * value + rng.gauss(0, sigma * math.sqrt(1 - rho * rho))
    return out


def test_a_constant_series_is_forecast_at_its_level_and_never_with_a_zero_width_interval():
    f = forecast([10.0, 10.0, 10.0], 10)
    assert f.total_j == pytest.approx(100.0)
    assert f.half_width_j == pytest.approx(MIN_HALF_WIDTH * 70.0)  # the floor, not zero
    assert f.low_j < 100.0 < f.high_j


def test_the_low_end_is_held_at_what_was_already_spent():
    f = forecast([9.0, 11.0], 4)  # two epochs: t(1), a very wide interval
    assert f.low_j == 20.0 and f.high_j > f.total_j > 20.0


def test_a_geometric_trend_is_extrapolated_to_the_exact_total():
    energy = [40.0 * 1.15**i for i in range(8)]  # each epoch 15% dearer (issue 22's job)
    for seen in range(3, 8):
        f = forecast(energy[:seen], 8)
        assert "trend" in f.method
        assert f.total_j == pytest.approx(sum(energy), rel=1e-9)
        assert f.low_j <= sum(energy) <= f.high_j


def test_a_bar_schedule_is_fitted_to_flops_and_each_epoch_to_come_priced_by_its_own():
    flops = [100.0, 20.0] * 5  # dense, sparse, ...
    energy = [5.0 + 0.1 * f for f in flops]  # 15, 7, 15, 7, ...: two levels
    f = forecast(energy[:4], 10, flops)
    assert f.total_j == pytest.approx(sum(energy))  # 110 J
    assert "FLOPs" in f.method and f.low_j < f.total_j < f.high_j


def test_a_bar_schedule_on_a_growing_machine_is_fitted_to_flops_and_trend():
    flops = [100.0, 20.0] * 10
    energy = [(5.0 + 0.1 * f) * 1.02**i for i, f in enumerate(flops)]
    f = forecast(energy[:8], 20, flops)
    assert "FLOPs" in f.method and "trend" in f.method
    assert f.total_j == pytest.approx(sum(energy), rel=0.02)


@pytest.mark.parametrize(
    ("kind", "drift"),
    [
        ("steady", lambda t: 1.0),
        ("geometric growth 3%", lambda t: 1.03**t),
        ("linear growth", lambda t: 1.0 + 0.04 * t),
        ("shrinking", lambda t: 0.98**t),
    ],
)
def test_the_interval_holds_the_known_truth_of_drifting_correlated_series_about_95_in_100(
    kind, drift
):
    rng = random.Random(kind)
    held, trials = 0, 200
    for _ in range(trials):
        noise = _ar1(24, 0.5, 0.05, rng)
        energy = [50.0 * drift(t) * math.exp(u) for t, u in enumerate(noise)]
        f = forecast(energy[:12], 24)  # after half the run
        held += f.low_j <= sum(energy) <= f.high_j
    assert 0.88 <= held / trials <= 1.0, f"{kind}: {held}/{trials}"


def test_correlated_epochs_widen_the_interval():
    assert 0.0 <= lag1_autocorrelation([1, -1, 1, -1, 1, -1]) < RHO_PRIOR  # anticorrelated
    assert lag1_autocorrelation([3, 2, 1, -1, -2, -3]) > RHO_PRIOR  # dear and cheap in runs
    alternating = [10.0, 10.5] * 8
    runs = ([10.0] * 4 + [10.5] * 4) * 2  # the same values, dear and cheap in runs of four
    assert forecast(runs, 40).half_width_j > forecast(alternating, 40).half_width_j


def test_one_epoch_has_no_interval_and_says_why_never_zero():
    f = forecast([12.0], 5)
    assert f.total_j == 60.0 and f.low_j is None and f.high_j is None
    assert "no interval" in f.note


def test_epochs_to_come_with_other_flops_than_those_seen_are_flagged():
    f = forecast([15.0], 4, [100.0, 20.0, 100.0, 20.0])  # only a dense epoch seen
    assert "other FLOPs" in f.note


def test_a_finished_run_forecasts_exactly_what_it_spent():
    f = forecast([3.0, 4.0], 2)
    assert (f.total_j, f.low_j, f.high_j) == (7.0, 7.0, 7.0)


def test_co2_follows_at_the_runs_intensity_and_pue():
    total, low, high = forecast([3.6e6] * 2, 4).co2_g(500.0, 1.2)
    assert total == pytest.approx(4 * 500.0 * 1.2)
    assert low == pytest.approx(total - MIN_HALF_WIDTH * 2 * 500.0 * 1.2) and high > total


@pytest.mark.parametrize(
    ("epochs", "total"), [([], 3), ([1.0, 2.0], 1), ([1.0, 0.0], 3), ([1.0, math.nan], 3)]
)
def test_impossible_inputs_raise_value_error(epochs, total):
    with pytest.raises(ValueError):
        forecast(epochs, total)


def test_the_lag1_autocorrelation_is_estimated_from_the_data_and_shrunk_toward_the_prior():
    rng = random.Random(7)
    assert lag1_autocorrelation([0.1, -0.1]) == RHO_PRIOR  # too few residuals: the prior
    assert lag1_autocorrelation([0.0] * 6) == RHO_PRIOR  # no variation to estimate it from
    assert lag1_autocorrelation(_ar1(2000, 0.8, 0.05, rng)) == pytest.approx(0.8, abs=0.05)
    assert lag1_autocorrelation(_ar1(2000, 0.0, 0.05, rng)) == pytest.approx(0.0, abs=0.05)
    assert lag1_autocorrelation([1.0, -1.0] * 10) == 0.0  # never below independence
    few = _ar1(8, 0.0, 0.05, random.Random(3))
    raw = lag1_autocorrelation(few * 250)  # the same values, many times: the data's own
    assert min(raw, RHO_PRIOR) <= lag1_autocorrelation(few) <= max(raw, RHO_PRIOR)


def _trend_weight(method: str) -> float:
    return float(method.split("epoch trend (weight ")[1].split(")")[0])


def test_a_drift_the_data_show_takes_the_trend_weight_to_one():
    rng = random.Random(5)
    energy = [40.0 * 1.15**t * math.exp(rng.gauss(0, 0.03)) for t in range(20)]
    f = forecast(energy[:8], 20)
    assert _trend_weight(f.method) >= 0.95
    assert f.low_j <= sum(energy) <= f.high_j


def test_a_steady_job_gives_the_trend_little_weight_and_is_not_charged_for_a_slope():
    noise = _ar1(24, 0.3, 0.05, random.Random(11))
    steady = [50.0 * math.exp(u) for u in noise]
    drifting = [50.0 * 1.06**t * math.exp(u) for t, u in enumerate(noise)]  # the same noise
    f, g = forecast(steady[:12], 24), forecast(drifting[:12], 24)
    assert _trend_weight(f.method) < 0.5 and _trend_weight(g.method) >= 0.95
    assert f.low_j <= sum(steady) <= f.high_j and g.low_j <= sum(drifting) <= g.high_j
    # relative to its total, the steady job's interval is the narrower one by far
    assert (f.high_j - f.low_j) / f.total_j < 0.6 * (g.high_j - g.low_j) / g.total_j

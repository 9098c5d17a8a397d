"""Forecasts of a run's total energy on synthetic epoch series, with exact expectations."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t

from greentrain.record.forecast import forecast


def test_a_constant_series_forecasts_its_mean_with_a_zero_width_interval():
    f = forecast([10.0, 10.0, 10.0], 10)
    assert (f.spent_j, f.total_j, f.low_j, f.high_j) == (30.0, 100.0, 100.0, 100.0)


def test_a_noisy_series_gets_a_t_interval_for_the_sum_of_the_epochs_left():
    f = forecast([9.0, 11.0], 4)  # mean 10, sample variance 2, two epochs left
    assert f.total_j == 40.0
    half = t.ppf(0.975, 1) * math.sqrt(2.0 * (2 + 2**2 / 2))
    assert f.half_width_j == pytest.approx(half)
    assert f.low_j == pytest.approx(40.0 - half) and f.high_j == pytest.approx(40.0 + half)


def test_a_bar_schedule_is_fitted_to_flops_and_each_epoch_to_come_priced_by_its_own():
    flops = [100.0, 20.0] * 5  # dense, sparse, ...
    energy = [5.0 + 0.1 * f for f in flops]  # 15, 7, 15, 7, ...
    f = forecast(energy[:4], 10, flops)
    assert f.total_j == pytest.approx(sum(energy))  # 110 J
    assert f.low_j == pytest.approx(f.total_j) and "FLOPs" in f.method


def test_a_noisy_two_phase_series_has_an_interval_around_the_truth():
    flops = [100.0, 20.0] * 10
    noise = [0.3, -0.2, -0.1, 0.25, -0.2, 0.1]
    energy = [5.0 + 0.1 * f + e for f, e in zip(flops, noise, strict=False)]
    f = forecast(energy, 20, flops)
    truth = sum(5.0 + 0.1 * x for x in flops)
    assert f.low_j < truth < f.high_j


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
    assert total == pytest.approx(4 * 500.0 * 1.2) and low == pytest.approx(total)


@pytest.mark.parametrize(("epochs", "total"), [([], 3), ([1.0, 2.0], 1)])
def test_impossible_inputs_raise_value_error(epochs, total):
    with pytest.raises(ValueError):
        forecast(epochs, total)

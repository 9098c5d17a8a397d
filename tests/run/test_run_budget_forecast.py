"""Budgets and live forecasts as parts: the guard's decisions and the forecast listener's
bookkeeping on synthetic window events (the wiring into runs is tested in test_run_budget.py)."""

from __future__ import annotations

import math
import time

import pytest

from greentrain.errors import ConfigError
from greentrain.record.forecast import forecast
from greentrain.run.budget import Budget, BudgetGuard
from greentrain.run.forecasting import ForecastListener, epochs_from_config, progress_text
from greentrain.units import kwh_to_joules


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "abc"])
@pytest.mark.parametrize("flag", ["kwh", "gco2"])
def test_bad_budgets_are_one_line_errors_naming_the_flag(flag, value):
    with pytest.raises(ConfigError) as info:
        Budget(**{flag: value})
    message = str(info.value)
    assert f"--budget-{flag}" in message and "\n" not in message


def test_the_binding_limit_is_the_smaller_of_energy_and_carbon():
    b = Budget(kwh=1.0, gco2=100.0)  # 100 g at 400 g/kWh x PUE 1.25 = 0.2 kWh
    assert b.limit_j(400.0, 1.25) == pytest.approx(kwh_to_joules(0.2))
    assert Budget(kwh=1.0).limit_j(400.0) == pytest.approx(kwh_to_joules(1.0))
    assert Budget().limit_j(400.0) is None and not Budget().active


def _guard(spent, fc=None, *, on_forecast=False, **kw):
    stops, notes, lines = [], [], []
    guard = BudgetGuard(
        Budget(kwh=1.0, forecast=on_forecast),
        intensity_g_per_kwh=500.0,
        pue=1.0,
        spent_j=lambda: spent[0],
        forecast=lambda: fc,
        stop=stops.append,
        note=lambda event, **d: notes.append((event, d)),
        say=lines.append,
        **kw,
    )
    return guard, stops, notes, lines


def test_the_guard_trips_once_when_the_spend_reaches_the_budget_with_its_figures():
    spent = [kwh_to_joules(0.5)]
    guard, stops, notes, lines = _guard(spent)
    assert guard.check() is None and not stops
    spent[0] = kwh_to_joules(1.0)
    tripped = guard.check()
    assert tripped["reason"] == "spent" and tripped["spent"]["kwh"] == pytest.approx(1.0)
    assert tripped["spent"]["gco2"] == pytest.approx(500.0)
    assert guard.check() is tripped and len(stops) == 1  # never stopped twice
    assert [n[0] for n in notes] == ["budget reached"] and "stopping the job" in lines[-1]


def test_a_forecast_over_budget_warns_once_and_stops_nothing_by_default():
    fc = forecast([kwh_to_joules(0.3)] * 2, 10)  # 3 kWh ahead, zero-width interval
    guard, stops, notes, lines = _guard([kwh_to_joules(0.6)], fc)
    assert guard.check() is None and guard.check() is None
    assert not stops and len(lines) == 1 and "over the budget" in lines[0]
    assert [n[0] for n in notes] == ["budget forecast crossed"]


def test_forecast_trips_only_when_the_whole_interval_is_over_budget():
    wide = forecast([kwh_to_joules(0.05), kwh_to_joules(0.15)], 10)  # total 1 kWh, wide
    guard, stops, _, _ = _guard([kwh_to_joules(0.2)], wide, on_forecast=True)
    assert wide.low_j < guard.limit_j and guard.check() is None and not stops
    sure = forecast([kwh_to_joules(0.3)] * 3, 10)
    guard, stops, _, _ = _guard([kwh_to_joules(0.9)], sure, on_forecast=True)
    assert guard.check()["reason"] == "forecast" and len(stops) == 1


def test_the_guard_thread_checks_until_it_trips():
    spent = [kwh_to_joules(2.0)]
    guard, stops, _, _ = _guard(spent, check_s=0.01)
    guard.start()
    for _ in range(500):
        if stops:
            break
        time.sleep(0.01)
    guard.close()
    assert len(stops) == 1


def _epoch(index, joules, run_j=None):
    event = {"name": "epoch", "info": {"index": index},
             "energy": {"cpu": {"energy_j": joules * 0.75}, "gpu": {"energy_j": joules * 0.25},
                        "dram": {"energy_j": None, "reason": "no meter"}}}  # fmt: skip
    if run_j is not None:
        event["run_energy"] = {"cpu": {"energy_j": run_j}}
    return event


def test_the_listener_forecasts_from_epoch_windows_and_the_jobs_epoch_count():
    made = []
    listener = ForecastListener(on_forecast=made.append)
    listener.on_window(_epoch(0, 10.0))  # no epoch count yet: nothing
    assert made == [] and listener.latest is None
    listener.on_config({"params": {"epochs": 5, "lr": 0.1}})
    listener.on_window({"name": "eval", "info": {}, "energy": {"cpu": {"energy_j": 99.0}}})
    listener.on_window(_epoch(1, 10.0, run_j=26.0))  # 6 J of setup outside the epochs
    assert len(made) == 1 and listener.latest is made[0]
    assert made[0].epochs_done == 2 and made[0].epochs_total == 5
    assert made[0].spent_j == 26.0 and made[0].total_j == pytest.approx(56.0)


def test_a_resumed_run_forecasts_the_epochs_left_from_its_first_index():
    listener = ForecastListener(epochs=10)
    listener.on_window(_epoch(6, 4.0))
    listener.on_window(_epoch(7, 4.0))
    f = listener.latest
    assert (f.epochs_done, f.epochs_total) == (8, 10) and f.total_j == pytest.approx(16.0)


def test_a_bar_schedule_is_forecast_from_the_jobs_flops_per_epoch():
    flops = [100.0, 20.0] * 3
    listener = ForecastListener()
    listener.on_config({"params": {"epochs": 6, "backward_flops_per_epoch": flops}})
    for i, f in enumerate(flops[:3]):
        listener.on_window(_epoch(i, 5.0 + 0.1 * f))
    assert "FLOPs" in listener.latest.method
    assert listener.latest.total_j == pytest.approx(sum(5.0 + 0.1 * f for f in flops))


def test_an_epoch_nobody_measured_gives_no_forecast_rather_than_a_wrong_one():
    listener = ForecastListener(epochs=3)
    listener.on_window({"name": "epoch", "info": {"index": 0},
                        "energy": {"cpu": {"energy_j": None, "reason": "no meter"}}})  # fmt: skip
    assert listener.latest is None


@pytest.mark.parametrize(
    "params, expected",
    [({"epochs": 3}, 3), ({"max_epochs": 4}, 4), ({"num_train_epochs": 2.5}, 3),
     ({"epochs": True}, None), ({"epochs": -1}, None), ({}, None)],
)  # fmt: skip
def test_the_epoch_count_comes_from_the_usual_config_keys(params, expected):
    assert epochs_from_config(params) == expected


def test_progress_text_shows_the_total_and_its_interval_in_one_unit():
    f = forecast([kwh_to_joules(k) for k in (0.04, 0.044, 0.042, 0.041, 0.043, 0.042)], 10)
    # two models averaged: an asymmetric interval, said as it is, in the total's unit
    assert progress_text(f) == "≈ 0.421 kWh at end, 95% 0.403-0.435"
    assert progress_text(forecast([10.0, 10.5], 3)) == "≈ 30.7 J at end, ±6.4"  # symmetric
    assert progress_text(forecast([20.0], 3)) == "≈ 60.0 J at end"
    held = forecast([9.0, 11.0], 4)  # the low end is held at the 20 J spent
    assert progress_text(held).startswith("≈ 39.9 J at end, 95% 20.0-")
    assert progress_text(None) is None


def test_a_narrow_interval_is_never_shown_as_plus_minus_zero():
    steady = forecast([50.0] * 5, 6)  # one epoch left, no variation: ±1% of it, 0.5 J
    text = progress_text(steady)
    assert text == "≈ 300 J at end, ±0.5"
    assert "±0 " not in text + " " and "±0.0 " not in text + " "
    half = float(text.split("±")[1].split()[0].rstrip(","))
    assert half > 0 and half == pytest.approx(steady.high_j - steady.total_j, rel=0.1)


def test_an_epoch_cut_short_by_the_stop_is_never_fed_to_the_forecast():
    listener = ForecastListener(epochs=10)
    for i in range(3):
        listener.on_window(dict(_epoch(i, 10.0), ended_unix=100.0 + i))
    before = listener.latest
    listener.stop_requested(102.5)
    listener.on_window(dict(_epoch(3, 2.0), ended_unix=103.0))  # a budget stop mid-epoch
    assert listener.latest is before and listener.partial_epochs == 1
    assert listener.epoch_j == [10.0, 10.0, 10.0]


def test_the_guard_checks_sooner_when_the_power_will_reach_the_limit_before_the_next_check():
    started = time.monotonic()
    limit = kwh_to_joules(1.0)

    def spent():  # reaches the limit 0.3 s after the start, far before a 30-second check
        return limit * (time.monotonic() - started) / 0.3

    stops = []
    guard = BudgetGuard(Budget(kwh=1.0), intensity_g_per_kwh=500.0, pue=1.0, spent_j=spent,
                        stop=stops.append, say=lambda line: None, check_s=30.0)  # fmt: skip
    guard.check()  # two readings give the power
    time.sleep(0.05)
    guard.check()
    guard.start()
    deadline = time.monotonic() + 20
    while not stops and time.monotonic() < deadline:
        time.sleep(0.01)
    guard.close()
    assert stops and stops[0]["spent_j"] < limit * 2  # not 30 s (100 limits) late

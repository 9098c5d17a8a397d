"""Drop schedulers: exact values, bounds, ramps, state round trips, application to a model.

One suite parametrized over every scheduler class (timm's tests/test_scheduler.py style),
then class-specific exact values.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ssprop import schedulers as S
from ssprop.conv import SparseConv2d
from ssprop.convert import convert, sparse_modules

ALL = [S.Constant, S.Linear, S.Cosine, S.Bar]
NAMES = {"constant": S.Constant, "linear": S.Linear, "cosine": S.Cosine, "bar": S.Bar}


def small_model() -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
    )
    return convert(model, drop_rate=0.8)


def make(cls, model=None, drop_rate=0.8, **kw):
    kw.setdefault("total_steps", 30)
    kw.setdefault("steps_per_epoch", 3)
    return cls(model, drop_rate, **kw)


# -- suite over all schedulers --------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("period", [None, 2, 4])
@pytest.mark.parametrize("unit", ["epoch", "iter"])
def test_rate_is_target_times_factor_and_within_bounds(cls, period, unit):
    sched = make(cls, period=period, period_unit=unit, total_steps=40, steps_per_epoch=4)
    for step in range(60):  # also past the planned end
        f = sched.factor(step)
        assert 0.0 <= f <= 1.0
        assert sched.rate(step) == pytest.approx(0.8 * f, abs=0)


@pytest.mark.parametrize("cls", ALL)
def test_rate_is_pure_and_does_not_move_the_scheduler(cls):
    sched = make(cls)
    first = [sched.rate(t) for t in range(30)]
    assert [sched.rate(t) for t in reversed(range(30))][::-1] == first
    assert sched.last_step == 0


@pytest.mark.parametrize("cls", ALL)
def test_warmup_epochs_are_dense_then_schedule_starts_at_its_time_zero(cls):
    plain = make(cls, total_steps=24, steps_per_epoch=3)
    warm = make(cls, total_steps=30, steps_per_epoch=3, warmup=2)
    assert [warm.rate(t) for t in range(6)] == [0.0] * 6
    assert [warm.rate(t + 6) for t in range(24)] == [plain.rate(t) for t in range(24)]


@pytest.mark.parametrize("cls", ALL)
def test_epoch_unit_rate_is_constant_within_an_epoch(cls):
    sched = make(cls, period=None, total_steps=50, steps_per_epoch=5)
    for epoch in range(10):
        values = {sched.rate(epoch * 5 + i) for i in range(5)}
        assert len(values) == 1


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("period", [None, 3])
def test_state_dict_round_trip_resumes_identically(cls, period):
    model_a = small_model()
    a = make(cls, model_a, period=period, period_unit="iter")
    for _ in range(7):
        a.step()
    state = copy.deepcopy(a.state_dict())
    assert "last_step" in state and state["last_step"] == 7
    torch.save(state, __import__("io").BytesIO())  # picklable, like torch's schedulers

    model_b = small_model()
    b = make(cls, model_b, period=period, period_unit="iter")
    b.load_state_dict(state)
    assert b.last_step == 7
    assert [m.drop_rate for m in model_b.modules() if hasattr(m, "target_drop_rate")] == [
        m.drop_rate for m in model_a.modules() if hasattr(m, "target_drop_rate")
    ]
    assert [a.step() for _ in range(20)] == [b.step() for _ in range(20)]


@pytest.mark.parametrize("cls", ALL)
def test_step_applies_the_rate_to_every_sparse_layer_of_a_converted_model(cls):
    model = small_model()
    layers = [m for _, m in sparse_modules(model)]
    assert len(layers) == 3 and all(isinstance(m, SparseConv2d) for m in layers)
    sched = make(cls, model, period=2, period_unit="iter")
    # construction applies iteration 0 (torch.optim.lr_scheduler contract)
    assert all(m.drop_rate == pytest.approx(sched.rate(0)) for m in layers)
    for step in range(1, 12):
        returned = sched.step()
        assert sched.last_step == step
        assert returned == sched.current_rate == sched.rate(step)
        assert all(m.drop_rate == pytest.approx(sched.rate(step)) for m in layers)
        assert all(m.target_drop_rate == 0.8 for m in layers)  # targets are not touched


@pytest.mark.parametrize("name", sorted(NAMES))
def test_build_makes_the_named_class(name):
    sched = S.build(name, None, 0.5, total_steps=10, steps_per_epoch=2, period=2)
    assert type(sched) is NAMES[name]
    assert sched.period == 2 and sched.nominal_rate == 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "step"}, "unknown drop schedule 'step'"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
        ({"drop_rate": -0.1}, r"drop_rate must be in \[0, 1\)"),
        ({"drop_rate": "x"}, "drop_rate must be a number"),
        ({"total_steps": 0}, "total_steps must be >= 1"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be >= 1"),
        ({"period": 0}, "period must be >= 1"),
        ({"name": "bar", "period": 1}, "period must be >= 2"),
        ({"period": 1.5}, "period must be an integer"),
        ({"period_unit": "batch"}, "period_unit must be 'epoch' or 'iter'"),
        ({"warmup": -1}, "warmup must be >= 0"),
        ({"warmup": 5}, "warmup .* must be shorter than the run"),
        ({"drop_rate": None}, "give a drop_rate when the scheduler has no model"),
    ],
)
def test_bad_values_raise_one_line_value_errors(kwargs, match):
    args = {
        "name": "linear",
        "model": None,
        "drop_rate": 0.8,
        "total_steps": 10,
        "steps_per_epoch": 2,
        "period": None,
        "period_unit": "epoch",
        "warmup": 0,
    }
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(ValueError, match=match) as info:
        S.build(name, **args)
    assert "\n" not in str(info.value)


def test_negative_step_is_rejected():
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        make(S.Bar).rate(-1)


# -- class-specific exact values ------------------------------------------------------------
def test_constant_is_target_everywhere_after_warmup():
    sched = make(S.Constant, total_steps=9, steps_per_epoch=3, warmup=1)
    assert [sched.rate(t) for t in range(9)] == [0.0] * 3 + [0.8] * 6


def test_bar_period_two_epochs_alternates_dense_and_sparse_epochs_dense_first():
    sched = make(S.Bar, period=2, total_steps=18, steps_per_epoch=3)
    assert [sched.rate(t) for t in range(18)] == [0, 0, 0, 0.8, 0.8, 0.8] * 3
    assert sched.mean_rate() == pytest.approx(0.4)  # the paper's "about 40%"


def test_bar_whole_run_is_the_step_function_of_fig_2c():
    sched = make(S.Bar, period=None, total_steps=10 * 4, steps_per_epoch=4)
    assert [sched.rate(4 * e) for e in range(10)] == [0.0] * 5 + [0.8] * 5
    assert sched.rate(1000) == 0.8  # past the end the last value is held


def test_bar_with_an_odd_period_gives_the_extra_unit_to_the_dense_phase():
    sched = make(S.Bar, period=3, period_unit="iter", total_steps=9, steps_per_epoch=9)
    assert [sched.factor(t) for t in range(9)] == [0, 0, 1] * 3


def test_bar_iteration_period_is_independent_of_epochs():
    sched = make(S.Bar, period=4, period_unit="iter", total_steps=12, steps_per_epoch=5)
    assert [sched.factor(t) for t in range(12)] == [0, 0, 1, 1] * 3


def test_linear_ramps_per_epoch_from_zero_to_target_at_the_last_epoch():
    sched = make(S.Linear, total_steps=5 * 2, steps_per_epoch=2)
    assert [sched.factor(t) for t in range(10)] == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1]
    rates = [sched.rate(t) for t in range(10)]
    assert rates == sorted(rates) and rates[-1] == 0.8


def test_cosine_ramp_is_monotone_with_exact_end_points_and_half_at_the_middle():
    sched = make(S.Cosine, total_steps=5, steps_per_epoch=1)
    f = [sched.factor(t) for t in range(5)]
    assert f[0] == 0.0 and f[4] == 1.0 and f[2] == pytest.approx(0.5)
    assert f == sorted(f)
    assert f[1] == pytest.approx((1 - math.cos(math.pi / 4)) / 2)


@pytest.mark.parametrize("cls", [S.Linear, S.Cosine])
def test_periodic_ramps_restart_every_period(cls):
    sched = make(cls, period=3, period_unit="iter", total_steps=12, steps_per_epoch=12)
    f = [sched.factor(t) for t in range(12)]
    assert f[:3] == f[3:6] == f[6:9] == f[9:]
    assert f[0] == 0.0 and f[2] == 1.0 and 0.0 < f[1] < 1.0


def test_mean_rate_counts_every_iteration_including_a_partial_last_epoch():
    sched = make(S.Bar, period=2, total_steps=7, steps_per_epoch=3)
    # epochs: dense(3) sparse(3) dense(1)
    assert sched.mean_rate() == pytest.approx(0.8 * 3 / 7)
    assert sched.mean_rate(6) == pytest.approx(0.4)
    assert sched.mean_rate(6, start=3) == pytest.approx(0.8)
    brute = sum(sched.rate(t) for t in range(7)) / 7
    assert sched.mean_rate() == pytest.approx(brute)


def test_per_layer_targets_keep_their_ratio_and_zero_target_layers_stay_dense():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3))
    convert(model, drop_rate=0.8, rates={"0": 0.0, "1": 0.4})
    layers = [m for _, m in sparse_modules(model)]
    targets = [m.target_drop_rate for m in layers]
    assert sorted(targets) == [0.0, 0.4, 0.8]

    per_layer = S.Bar(model, None, total_steps=4, steps_per_epoch=1, period=2)
    assert per_layer.nominal_rate == 0.8
    assert [m.drop_rate for m in layers] == [0.0, 0.0, 0.0]  # epoch 1: dense phase
    per_layer.step()  # epoch 2: sparse phase
    assert [m.drop_rate for m in layers] == pytest.approx(targets)

    explicit = S.Bar(model, 0.6, total_steps=4, steps_per_epoch=1, period=2)
    explicit.step()
    assert [m.drop_rate for m in layers] == pytest.approx([0.0 if t == 0 else 0.6 for t in targets])


def test_the_registry_maps_exactly_the_torch_free_names_in_their_order():
    from ssprop.schedule_names import SCHEDULE_NAMES

    assert tuple(S.SCHEDULERS) == SCHEDULE_NAMES

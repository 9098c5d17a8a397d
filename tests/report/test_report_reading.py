"""greentrain.report.reading: a bad value in a run record is left out and noted -- never used,
never 0, never a crash -- and the figures of the rest of the run stand."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
from fixtures.runs import BAD_VALUES, hostile_run, make_run, study

from greentrain.report import curves, grouping, reading
from greentrain.report import runs as figures
from greentrain.report import study as study_report


@pytest.mark.parametrize(
    "value, expected",
    [(0, 0.0), (3, 3.0), (0.25, 0.25), (np.float32(0.5), 0.5), (np.int64(7), 7.0), (None, None)],
)
def test_check_number_accepts_real_finite_numbers_only(value, expected):
    assert reading.check_number(value) == (expected, None)


@pytest.mark.parametrize(
    "value, why",
    [
        ("0.9", "text, not a number"),
        (True, "true/false, not a number"),
        ([0.9], "a list, not a number"),
        ({"a": 1}, "a mapping, not a number"),
        (float("nan"), "NaN, not a number"),
        (float("inf"), "infinite"),
        (10**400, "too large for a float"),
        (object(), "a object, not a number"),
    ],
)
def test_check_number_says_why_a_value_is_not_a_number(value, why):
    assert reading.check_number(value) == (None, why)


def test_check_number_rejects_negative_only_for_quantities_that_cannot_be():
    assert reading.check_number(-1.0) == (-1.0, None)
    assert reading.check_number(-1.0, nonnegative=True)[1].startswith("negative")


def test_invalid_final_accuracy_is_missing_and_noted_not_replaced_by_an_earlier_value():
    run = hostile_run("x1", {"metrics[-1].final_test_acc": "0.9"})
    issues = []
    assert figures.final_accuracy(run, issues) is None  # not test_acc's 0.8, not 0
    assert issues == [
        reading.Issue("x1", "metrics[3].final_test_acc", "'0.9'", "ignored", "text, not a number")
    ]
    assert (
        issues[0].text() == "run x1: metrics[3].final_test_acc = '0.9' ignored (text, not a number)"
    )


def test_invalid_last_test_acc_gives_no_accuracy_rather_than_the_epoch_before():
    run = make_run("x", status="failed", accs=[0.5, 0.7])
    run["metrics"][-1]["test_acc"] = [0.9]
    assert figures.final_accuracy(run) is None
    assert figures.last_metric(run, "train_loss") == 0.5  # other metrics unaffected


def test_mean_over_epochs_leaves_invalid_values_out_and_summarize_counts_them():
    run = hostile_run(
        "x",
        {
            "metrics[0].backward_flops_per_iter": "x",
            "metrics[1].backward_flops_per_iter": "y",
        },
        flops_per_iter=[1.0, 2.0, 4.0],
    )
    issues = []
    assert figures.mean_backward_flops(run, issues) == 4.0  # the one valid value, not (0+0+4)/3
    (merged,) = reading.summarize(issues + issues)  # duplicates read twice count once
    assert merged.field == "metrics[*].backward_flops_per_iter" and merged.count == 2
    assert merged.text().endswith("and 1 more like it")


def test_summarize_keeps_distinct_issues_in_first_seen_order():
    a = reading.Issue("r", "carbon.pue", "inf", "ignored", "infinite")
    b = reading.Issue("r", "co2_g", "1.0", "ignored", "x")
    assert reading.summarize([b, a, b]) == [b, a]


def test_text_drop_rate_is_its_own_configuration_never_pooled_with_numbers():
    runs = [
        make_run("a", schedule="bar", drop_rate=0.8),
        hostile_run("b", {"config.drop_rate": "0.8"}, schedule="bar", drop_rate=0.8, seed=1),
        hostile_run("c", {"config.drop_rate": "0.8"}, schedule="bar", drop_rate=0.8, seed=2),
        hostile_run("d", {"config.drop_rate": "high"}, schedule="bar", drop_rate=0.8, seed=3),
    ]
    g = grouping.group_runs(runs)
    labels = dict(zip(g["configuration"], g["n_runs"], strict=True))
    assert labels == {
        "resnet18 / cifar10 / bar / 0.8": 1,
        "resnet18 / cifar10 / bar / invalid '0.8'": 2,
        "resnet18 / cifar10 / bar / invalid 'high'": 1,
    }
    assert g["drop_rate"].isna().sum() == 2  # the numeric column stays numeric
    bad = g[g["configuration"].str.contains("high")].iloc[0]
    assert [i.field for i in bad["issues"]] == ["config.drop_rate"]


@pytest.mark.parametrize("model, label", [(3, "3"), ({"a": 1}, "{'a': 1}"), ([1], "[1]")])
def test_config_text_of_the_wrong_type_is_shown_as_its_repr_and_noted(model, label):
    run = hostile_run("x", {"config.model": model})
    frame = grouping.runs_frame([run])
    assert frame.loc[0, "model"] == label
    (issue,) = frame.loc[0, "issues"]
    assert (issue.field, issue.action) == ("config.model", "shown as text")


@pytest.mark.parametrize("key", ["pue", "intensity_g_per_kwh"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), "high", -1.0, [1]])
def test_co2_computed_from_an_unusable_carbon_factor_is_left_out(key, value):
    run = hostile_run("x", {f"carbon.{key}": value})
    issues = []
    assert figures.run_co2_g(run, issues) is None
    assert {i.field for i in issues} == {f"carbon.{key}", "co2_g"}
    assert figures.run_energy_kwh(run) == pytest.approx(0.3)  # the energy still stands


def test_pue_below_one_is_impossible_and_a_missing_pue_is_one():
    assert figures.carbon_factors(hostile_run("x", {"carbon.pue": 0.5}))[1:] == (None, False)
    run = make_run("x")
    del run["carbon"]["pue"]
    assert figures.carbon_factors(run) == (400.0, 1.0, True)


def test_negative_and_non_finite_energies_are_unmeasured_not_zero():
    runs = [
        make_run("ok"),
        hostile_run("neg", {"energy_kwh": -1.0}),
        hostile_run("inf", {"energy_kwh": float("inf")}),
    ]
    totals = study_report.study_totals(runs)
    assert totals.loc["all", "energy_kwh"] == pytest.approx(0.3)
    assert totals.loc["all", "unmeasured_runs"] == 2


@pytest.mark.parametrize(
    "energy",
    [
        "a lot",
        [1, 2],
        {"gpu": "x"},
        {"gpu": None},
        {"gpu": {"energy_j": "x", "source": 3}},
        {"gpu": {"energy_j": 1.0, "estimated": "no"}},
        {"gpu": {"energy_j": None, "reason": ["why"]}},
    ],
)
def test_odd_energy_shapes_never_crash_and_are_noted(energy):
    run = hostile_run("x", {"energy": energy})
    issues = []
    figures.run_is_estimated(run, issues)
    figures.energy_sources(run, issues)
    if energy != {"gpu": None}:
        assert issues, energy


def test_an_unreadable_estimated_flag_counts_as_estimated():
    run = hostile_run("x", {"energy.gpu.estimated": "no"})
    assert figures.run_is_estimated(run) is True


def test_windows_without_times_or_with_bad_ones_leave_the_curve_standing():
    run = make_run("x")
    run["windows"][0]["started_at"] = None
    run["windows"][1]["started_at"] = "yesterday"
    run["windows"][2]["started_at"] = datetime(2026, 1, 1, 12, 0, 20).isoformat()  # no zone
    run["windows"].append("not a window")
    run["windows"].append({"name": "epoch", "index": "3", "energy": {"gpu": {"energy_j": "x"}}})
    issues = []
    curve = curves.accuracy_curve(run, issues=issues)
    assert [c["test_acc"] for c in curve] == [0.5, 0.7, 0.8]
    assert curve[-1]["cum_energy_kwh"] == pytest.approx(0.1)  # only the third window counted
    fields = {i.field for i in issues}
    assert {"windows[1].started_at", "windows[3]", "windows[4].energy.gpu.energy_j"} <= fields
    assert len(curves.epoch_energies_kwh(run)) == 4


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize(
    "path",
    [
        "metrics[-1].final_test_acc",
        "metrics[0].test_acc",
        "metrics[0].backward_flops_per_iter",
        "metrics[0].time_s",
        "metrics[0].drop_rate",
        "config.drop_rate",
        "config.model",
        "config.seed",
        "energy_kwh",
        "co2_g",
        "duration_s",
        "carbon.pue",
        "energy.gpu.energy_j",
        "windows[0].energy.gpu.energy_j",
        "tags",
        "metrics",
    ],
)
def test_every_figure_of_a_run_survives_any_bad_value_anywhere(path, value):
    run = hostile_run("x", {path: value})
    row = grouping.runs_frame([run]).iloc[0]
    figures.comparison_row(run)
    curves.accuracy_curve(run)
    study_report.energy_per_epoch_by_schedule([run])
    for name in ("accuracy", "energy_kwh", "co2_g", "duration_s", "backward_flops"):
        v = row[name]
        assert v is None or (isinstance(v, float) and not math.isinf(v)), (name, v)
    if path == "tags" and not isinstance(value, dict):
        assert row["tags"] == {}


def test_study_runs_read_without_any_issue():
    frame = grouping.runs_frame(study())
    assert frame["issues"].map(len).sum() == 0

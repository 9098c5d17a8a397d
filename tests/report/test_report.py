"""greentrain.report on fixture runs with hand-checked numbers (see fixtures/runs.study)."""

from __future__ import annotations

import math

import pytest
from fixtures.runs import make_run, study

from greentrain.report import curves, grouping, stats
from greentrain.report import study as study_report


def _row(groups, label):
    return groups[groups["configuration"] == label].iloc[0]


def test_group_runs_pools_seeds_with_mean_std_and_t_interval():
    g = grouping.group_runs(study())
    dense = _row(g, "resnet18 / cifar10 / dense")
    assert dense["n_runs"] == 2
    assert dense["accuracy_mean"] == pytest.approx(0.81)
    assert dense["accuracy_std"] == pytest.approx(math.sqrt(2) * 0.01)
    # t(0.975, df=1) = 12.7062; half-width = t * s / sqrt(n) = 12.7062 * 0.01
    assert dense["accuracy_ci95"] == pytest.approx(0.127062, rel=1e-4)
    bar = _row(g, "resnet18 / cifar10 / bar / 0.8")
    assert bar["accuracy_mean"] == pytest.approx(0.79)
    assert bar["accuracy_std"] == pytest.approx(0.01)
    # t(0.975, df=2) = 4.302653; half-width = 4.302653 * 0.01 / sqrt(3)
    assert bar["accuracy_ci95"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert bar["energy_kwh_mean"] == pytest.approx(0.15)
    assert bar["backward_flops_mean"] == pytest.approx(2e8)
    assert bar["acc_per_kwh_mean"] == pytest.approx((0.78 + 0.79 + 0.80) / 3 / 0.15)


def test_single_run_configuration_has_undefined_std_and_ci_not_zero():
    g = grouping.group_runs(study())
    one = _row(g, "resnet18 / cifar10 / constant / 0.5")
    assert one["n_runs"] == 1
    assert math.isnan(one["accuracy_std"]) and math.isnan(one["accuracy_ci95"])
    assert one["ci_note"] == stats.CI_UNDEFINED_NOTE
    s = stats.mean_ci([3.0])
    assert (s.mean, s.std, s.ci95, s.note) == (3.0, None, None, stats.CI_UNDEFINED_NOTE)
    assert stats.mean_ci([None, float("nan")]).n == 0


def test_group_is_estimated_if_any_member_energy_is_estimated():
    runs = study() + [
        make_run("c1", schedule="constant", drop_rate=0.5, seed=1, estimated=False),
    ]
    g = grouping.group_runs(runs)
    assert bool(_row(g, "resnet18 / cifar10 / constant / 0.5")["estimated"]) is True
    assert bool(_row(g, "resnet18 / cifar10 / dense")["estimated"]) is False


def test_only_finished_runs_enter_the_statistics():
    g = grouping.group_runs(study())
    assert _row(g, "resnet18 / cifar10 / dense")["run_ids"] == ["d0", "d1"]


def test_energy_to_accuracy_is_cumulative_window_energy_until_first_reaching_target():
    run = study()[0]  # accs 0.5, 0.7, 0.8; 0.1 kWh per epoch
    assert curves.energy_to_accuracy(run, 0.5) == pytest.approx(0.1)
    assert curves.energy_to_accuracy(run, 0.7) == pytest.approx(0.2)
    assert curves.energy_to_accuracy(run, 0.75) == pytest.approx(0.3)
    assert curves.energy_to_accuracy(run, 0.9) is None


def test_energy_to_accuracy_does_not_count_nested_windows_twice():
    run = study()[0]
    inner = dict(run["windows"][0], name="eval", index=99)  # same span as epoch 0, nested
    inner["started_at"] = "2026-01-01T12:00:05+00:00"
    inner["energy"] = {"gpu": {"energy_j": 1e9, "source": "fake:counter"}}
    run["windows"].append(inner)
    assert curves.energy_to_accuracy(run, 0.7) == pytest.approx(0.2)


def test_energy_to_accuracy_without_windows_is_none_not_zero():
    run = study()[0]
    run["windows"] = []
    assert curves.energy_to_accuracy(run, 0.5) is None


def test_pareto_front_keeps_only_non_dominated_configurations():
    g = grouping.group_runs(study())
    front = study_report.pareto_front(g)
    # bar 0.8 (0.79, 0.15 kWh) and dense (0.81, 0.3 kWh); constant 0.5 (0.75, 0.3) is dominated
    assert list(front["configuration"]) == [
        "resnet18 / cifar10 / bar / 0.8",
        "resnet18 / cifar10 / dense",
    ]


def test_pareto_mask_minimises_fid_and_skips_missing_points():
    assert study_report.pareto_mask([1, 2, 3], [1, 1, 2]) == [False, True, True]
    assert study_report.pareto_mask([1, 2, 1], [1, 1, 2]) == [False, True, False]
    assert study_report.pareto_mask([10, 20, 5], [1, 1, 2], higher_is_better=False) == [
        True,
        False,
        True,
    ]
    assert study_report.pareto_mask([None, 1.0], [1.0, 1.0]) == [False, True]


def test_savings_vs_dense_compares_measured_energy_with_analytic_flops():
    sav = study_report.savings_vs_dense(grouping.group_runs(study())).set_index("configuration")
    bar = sav.loc["resnet18 / cifar10 / bar / 0.8"]
    assert bar["energy_saving"] == pytest.approx(0.5)
    assert bar["flops_saving"] == pytest.approx(0.8)
    assert bar["accuracy_delta"] == pytest.approx(-0.02)
    assert bar["baseline"] == "resnet18 / cifar10 / dense"
    const = sav.loc["resnet18 / cifar10 / constant / 0.5"]
    assert const["energy_saving"] == pytest.approx(0.0) and bool(const["estimated"])


def test_study_totals_include_failed_and_interrupted_runs_separately():
    t = study_report.study_totals(study())
    assert list(t.index) == ["finished", "failed", "interrupted", "all"]
    assert t.loc["finished", "energy_kwh"] == pytest.approx(0.3 * 2 + 0.15 * 3 + 0.3)
    assert t.loc["failed", "energy_kwh"] == pytest.approx(0.05)
    assert t.loc["interrupted", "energy_kwh"] == pytest.approx(0.1)
    assert t.loc["all", "energy_kwh"] == pytest.approx(1.5)
    assert t.loc["all", "runs"] == 8 and t.loc["all", "estimated_runs"] == 1


def test_run_without_energy_is_unmeasured_not_zero():
    run = make_run("u", accs=[0.5])
    run.update(energy_j=None, energy_kwh=None, co2_g=None)
    run["energy"] = {"gpu": {"energy_j": None, "reason": "no GPU"}}
    t = study_report.study_totals([run])
    assert t.loc["all", "unmeasured_runs"] == 1
    row = grouping.runs_frame([run]).iloc[0]
    assert row["energy_kwh"] is None or math.isnan(row["energy_kwh"])
    assert "unavailable: no GPU" in row["energy_sources"]


def test_ddpm_runs_report_fid_and_no_accuracy():
    runs = [make_run(f"g{s}", model="unet", dataset="mnist", seed=s, fids=[50.0, 40.0 + s],
                     job="ddpm") for s in range(2)]  # fmt: skip
    g = grouping.group_runs(runs)
    assert g.iloc[0]["fid_mean"] == pytest.approx(40.5)
    assert math.isnan(g.iloc[0]["accuracy_mean"])


def test_runs_without_model_config_are_grouped_by_name():
    run = make_run("s1", model=None, name="my script")
    g = grouping.group_runs([run])
    assert list(g["configuration"]) == ["my script"]


def test_energy_per_epoch_by_schedule_averages_epoch_windows():
    series = study_report.energy_per_epoch_by_schedule(study())
    assert series["dense"] == pytest.approx([0.1, 0.1, 0.1])
    assert series["bar 0.8"] == pytest.approx([0.05, 0.05, 0.05])


def test_empty_input_gives_empty_tables():
    assert grouping.group_runs([]).empty
    assert study_report.pareto_front(grouping.group_runs([])).empty
    assert study_report.savings_vs_dense(grouping.group_runs([])).empty
    assert study_report.study_totals([]).loc["all", "runs"] == 0


def test_dense_runs_pool_into_one_configuration_whatever_their_schedule():
    runs = [
        make_run("d0", schedule="constant", drop_rate=0.0, seed=0, accs=[0.8]),
        make_run("d1", schedule="bar", drop_rate=0.0, seed=1, accs=[0.9]),
        make_run("s0", schedule="bar", drop_rate=0.8, seed=0, accs=[0.7]),
    ]
    g = grouping.group_runs(runs)
    assert list(g["configuration"]).count("resnet18 / cifar10 / dense") == 1
    dense = _row(g, "resnet18 / cifar10 / dense")
    assert dense["n_runs"] == 2
    assert dense["accuracy_mean"] == pytest.approx(0.85)

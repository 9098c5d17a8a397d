"""Budgets wired into real runs: ``greentrain run``, ``track()``, ``train`` and ``sweep`` stop
a real CPU job cleanly with status ``budget`` and exit code 124 (fake meter: 155 W)."""

from __future__ import annotations

import math
import sys
import time

import pytest

from greentrain.cli import main
from greentrain.errors import EXIT_BUDGET, BudgetExceeded
from greentrain.record.forecast import Forecast
from greentrain.run import RunOptions, track
from greentrain.store import Store
from greentrain.studies.sweep_forecast import PointForecast, SweepForecast, configuration
from greentrain.units import kwh_to_joules

LOOP = "import time\nwhile True: time.sleep(0.01)"
TINY_TRAIN = [
    "--batch-size", "16", "--max-steps-per-epoch", "2", "--limit-eval-batches", "1",
    "--eval-batch-size", "16", "--meter", "fake", "--device", "cpu", "--no-progress",
]  # fmt: skip


def _events(run: dict) -> list[str]:
    return [e["event"] for e in run.get("events") or []]


def test_greentrain_run_stops_an_endless_job_at_its_budget_with_exit_124(tmp_path, capsys):
    store = str(tmp_path / "s.db")
    started = time.monotonic()
    argv = ["run", "--store", store, "--meter", "fake", "--budget-kwh", "0.0001", "--"]
    code = main([*argv, sys.executable, "-c", LOOP])
    assert code == EXIT_BUDGET
    assert time.monotonic() - started < 60
    (run,) = Store(store).list_runs()
    full = Store(store).get_run(run["id"])
    assert full["status"] == "budget" and full["exit_code"] == EXIT_BUDGET
    assert "budget set" in _events(full)
    tripped = next(e for e in full["events"] if e["event"] == "budget")
    assert tripped["spent_j"] >= kwh_to_joules(0.0001) * 0.99
    assert "budget 0.0001 kWh reached" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "--budget-kwh", "-1", "--", "true"], "--budget-kwh"),
        (["run", "--budget-gco2", "nan", "--", "true"], "--budget-gco2"),
        (["run", "--budget-kwh", "0", "--", "true"], "--budget-kwh"),
        (["train", "--budget-gco2", "-3", "--epochs", "1"], "--budget-gco2"),
    ],
)
def test_bad_budgets_on_the_command_line_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1


def test_track_raises_budget_exceeded_in_the_loop_and_records_budget(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=0.00005)
    with pytest.raises(BudgetExceeded, match="budget"):
        with track("loop", options=options) as run:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.01)
    assert run.budget_exceeded
    (stored,) = Store(store).list_runs()
    assert stored["status"] == "budget"


def test_greentrain_train_stops_at_its_budget_with_exit_124(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = str(tmp_path / "s.db")
    argv = ["train", "--store", store, "--epochs", "200", "--budget-kwh", "0.00002"]
    assert main([*argv, *TINY_TRAIN]) == EXIT_BUDGET
    (run,) = Store(store).list_runs()
    assert run["status"] == "budget"
    assert run["config"]["budget_kwh"] == 0.00002


def test_a_sweep_past_its_budget_starts_no_more_points_and_exits_124(tmp_path, capsys):
    store = str(tmp_path / "s.db")
    argv = ["sweep", "--drop", "0,0.8", "--store", store, "--epochs", "200"]
    assert main([*argv, "--budget-kwh", "0.00002", *TINY_TRAIN]) == EXIT_BUDGET
    runs = Store(store).list_runs()
    assert [r["status"] for r in runs] == ["budget"]  # the second point never started
    out = capsys.readouterr()
    assert "no more points start" in out.out and "budget" in out.err
    assert out.out.count("budget ") >= 2  # both points' outcome lines


def _fc(total: float, half: float | None) -> Forecast:
    low, high = (None, None) if half is None else (total - half, total + half)
    return Forecast(2, 10, 1.0, total, low, high, "test")


def test_a_sweep_forecast_adds_seeds_linearly_configurations_in_quadrature_measured_not_at_all():
    rows = [
        PointForecast("drop=0,seed=0", False, "probe", _fc(100.0, 10.0)),
        PointForecast("drop=0,seed=1", False, "probe", _fc(120.0, 20.0)),
        PointForecast("drop=0,seed=2", True, "finished run", Forecast(10, 10, 90, 90, 90, 90, "m")),
        PointForecast("drop=0.8,seed=0", False, "probe", _fc(50.0, 40.0)),
    ]
    made = SweepForecast("sid", rows, probes_j=7.0, intensity_g_per_kwh=400.0, pue=1.5)
    assert made.total_j == 360.0 and made.measured_j == 90.0
    assert made.half_width_j == pytest.approx(math.hypot(10.0 + 20.0, 40.0))
    last = made.lines()[-1]
    assert "± " in last and "gCO2e at 400 gCO2e/kWh and PUE 1.5" in last
    assert "1 of 4 points measured" in last and "3 predicted" in last
    assert [line.split()[1] for line in made.lines()[1:5]] == ["predicted", "predicted",
                                                               "measured", "predicted"]  # fmt: skip
    measured = [r for r in rows if r.measured]
    assert "(every point measured)" in SweepForecast("sid", measured, 0.0, 400.0, 1.0).lines()[-1]
    rows.append(PointForecast("drop=0.9,seed=0", False, "probe", _fc(5.0, None)))
    assert SweepForecast("sid", rows, 0.0, 400.0, 1.0).half_width_j is None


def test_a_configuration_is_a_point_key_without_its_seed():
    key = "model=resnet18,dataset=digits,drop=0.8,schedule=bar,seed=3"
    assert configuration(key) == "model=resnet18,dataset=digits,drop=0.8,schedule=bar"


def test_dry_run_forecast_probes_every_seed_itself_reuses_its_probe_and_measures_finished_points(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = str(tmp_path / "s.db")
    grid = ["sweep", "--drop", "0", "--seed", "0,1", "--store", store, "--epochs", "4",
            "--sweep-id", "s1"]  # fmt: skip
    argv = [*grid, "--dry-run-forecast", "--probe-epochs", "3", *TINY_TRAIN]
    assert main(argv) == 0
    first = capsys.readouterr().out
    runs = Store(store).list_runs()
    assert len(runs) == 2 and all("sweep" not in r["tags"] for r in runs)  # one probe per seed
    assert {r["tags"]["point"].split("seed=")[1] for r in runs} == {"0", "1"}
    assert {r["tags"]["probe-epochs"] for r in runs} == {"3"}
    rows = [line for line in first.splitlines() if line.startswith("model=")]
    assert len(rows) == 2 and all(" predicted " in line for line in rows)
    assert all("gpu fake:fake" in line for line in rows)  # each figure's meter and method
    total = [line for line in first.splitlines() if "kWh" in line and "gCO2e" in line]
    assert total and "the probes spent" in total[0] and "0 of 2 points measured" in total[0]

    assert main(argv) == 0  # again: the probes are reused, nothing new runs
    second = capsys.readouterr().out
    assert len(Store(store).list_runs()) == 2 and "probing" not in second
    assert [ln for ln in second.splitlines() if ln.startswith("model=")] == rows

    one = ["sweep", "--drop", "0", "--seed", "0", "--store", store, "--epochs", "4",
           "--sweep-id", "s1"]  # fmt: skip
    assert main([*one, *TINY_TRAIN]) == 0  # the point drop=0, seed=0 runs for real
    capsys.readouterr()
    assert main(argv) == 0
    third = capsys.readouterr().out
    measured = [ln for ln in third.splitlines() if " measured " in ln and ln.startswith("model=")]
    assert len(measured) == 1 and "seed=0" in measured[0]
    assert "1 of 2 points measured" in third
    assert " ± " in [ln for ln in third.splitlines() if "gCO2e" in ln][0]  # never "± 0"

"""``greentrain sweep``: points are tagged runs; a re-run skips finished points, retries failed."""

from __future__ import annotations

import pytest

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.jobs.config import TrainConfig
from greentrain.run import RunOptions
from greentrain.store import Store
from greentrain.studies.sweep_plan import compute_sweep_id, parse_grid, plan


def test_sweep_id_depends_on_grid_and_result_changing_flags_only():
    grid = parse_grid({"drop": "0,0.8", "seed": "0,1"})
    base = TrainConfig(epochs=3)
    sid = compute_sweep_id(grid, base)
    other_store = RunOptions(store="other.db", name="n", tags={"t": "v"})
    assert sid == compute_sweep_id(grid, TrainConfig(epochs=3, progress=False), other_store)
    assert sid != compute_sweep_id(grid, base, RunOptions.build(pue=1.2))
    assert sid != compute_sweep_id(grid, TrainConfig(epochs=4))
    assert sid != compute_sweep_id(parse_grid({"drop": "0,0.5", "seed": "0,1"}), base)
    points = plan(grid, base).points
    assert len(points) == 4
    point = points["model=resnet18,dataset=digits,drop=0.8,schedule=bar,seed=1"]
    assert (point.cfg.drop, point.cfg.seed, point.run.tags["sweep"]) == (0.8, 1, sid)


def test_bad_grid_values_raise_config_error():
    with pytest.raises(ConfigError, match="--drop"):
        parse_grid({"drop": "0,lots"})
    with pytest.raises(ConfigError, match="cannot sweep"):
        parse_grid({"lr": "1,2"})


def test_rerun_skips_finished_points_and_retries_failed_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    store = str(tmp_path / "s.db")
    common = [
        "sweep", "--dataset", "digits,mnist", "--drop", "0.8",
        "--store", store, "--epochs", "1", "--batch-size", "16", "--max-steps-per-epoch", "1",
        "--limit-eval-batches", "1", "--eval-batch-size", "16", "--meter", "fake",
        "--device", "cpu", "--no-progress", "--data-dir", str(tmp_path / "no-data"),
    ]  # fmt: skip
    # first pass, local executor: digits trains; mnist fails before metering (no data in
    # --data-dir), so it leaves an error and no finished run
    assert main(common) == 1
    runs = Store(store).list_runs()
    by_point = {r["tags"]["point"]: r for r in runs}
    digits_key = "model=resnet18,dataset=digits,drop=0.8,schedule=bar,seed=0"
    mnist_key = digits_key.replace("digits", "mnist")
    assert by_point[digits_key]["status"] == "finished"
    assert mnist_key not in by_point
    sweep_id = by_point[digits_key]["tags"]["sweep"]
    assert "1 point(s) failed" in capsys.readouterr().err

    # second pass through submitit's local executor: only the failed point runs again
    folder = str(tmp_path / "submitit")
    assert main([*common, "--executor", "slurm", "--cluster", "local", "--folder", folder]) == 1
    runs = Store(store).list_runs(tags={"sweep": sweep_id})
    assert [(r["tags"]["point"], r["status"]) for r in runs] == [(digits_key, "finished")]
    out = capsys.readouterr().out
    assert "1 finished before, 1 to run" in out


def test_dense_point_runs_once_whatever_the_schedules():
    grid = parse_grid({"drop": "0,0.8", "schedule": "constant,bar,cosine"})
    keys = sorted(plan(grid, TrainConfig(epochs=2)).points)
    dense = [k for k in keys if ",drop=0," in k]
    assert dense == ["model=resnet18,dataset=digits,drop=0,schedule=constant,seed=0"]
    assert len(keys) == 1 + 3

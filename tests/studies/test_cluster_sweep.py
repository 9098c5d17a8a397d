"""Sweeps into a shared PostgreSQL store: a password in the store's URL never reaches a command
line or submitit's job folder."""

from __future__ import annotations

import pytest

from greentrain.errors import ConfigError
from greentrain.jobs.config import TrainConfig
from greentrain.run import RunOptions
from greentrain.studies.sweep import child_env, run_sweep, train_command
from greentrain.studies.sweep_plan import parse_grid, plan

URL = "postgresql://me:s3cret-pw@db.example:5432/runs"


def test_a_local_point_gets_a_password_url_in_its_environment_not_its_command():
    grid = parse_grid({"drop": "0.8"})
    [point] = plan(grid, TrainConfig(epochs=1), RunOptions(store=URL)).points.values()
    command = train_command(point)
    assert not any("s3cret-pw" in arg for arg in command) and "--store" not in command
    assert child_env(None, point)["GREENTRAIN_STORE"] == URL
    plain = "postgresql://me@db.example/runs"
    [point] = plan(grid, TrainConfig(epochs=1), RunOptions(store=plain)).points.values()
    assert plain in train_command(point)  # nothing secret: the command keeps its --store


def test_the_slurm_executor_refuses_a_url_with_a_password(tmp_path, monkeypatch):
    monkeypatch.setattr("greentrain.studies.sweep.finished_points", lambda sid, store: {})
    with pytest.raises(ConfigError, match="PGPASSWORD") as err:
        run_sweep(
            parse_grid({"drop": "0.8"}),
            TrainConfig(epochs=1),
            RunOptions(store=URL),
            executor="slurm",
            cluster="local",
            folder=str(tmp_path),
            echo=lambda s: None,
        )
    assert "s3cret-pw" not in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing was submitted

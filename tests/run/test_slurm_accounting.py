"""SLURM's own figure: under SLURM with ``sacct`` on the PATH (a stub here: no SLURM), the run
(and its group) records ``ConsumedEnergyRaw`` beside its own total, with the disagreement in %;
a cluster without an energy plugin is said, never 0 J; only the group's rank-0 node asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from greentrain.record.accounting import accounting_alternatives
from greentrain.run.slurm_accounting import consumed_energy, slurm_job
from greentrain.store import Store

pytestmark = pytest.mark.slow

# the job's energy: 0 J at the launch reading, 1000 J from the next reading on
FAKE_ONLY = {"name": "fake", "channels": [{"domain": "gpu", "device": "gpu:0",
                                           "energy_j": [0.0, 1000.0]}]}  # fmt: skip


def _stub_sacct(folder, answer: str, calls) -> str:
    """A ``sacct`` on a PATH of its own that prints ``answer`` and logs its arguments."""
    folder.mkdir(exist_ok=True)
    stub = folder / "sacct"
    stub.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write({answer!r})\n"
    )
    stub.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def _run(tmp_path, env_extra: dict[str, str], store) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENTRAIN_FAKE_METER": json.dumps(FAKE_ONLY), **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--", sys.executable, "-c", "pass"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_group_records_slurms_consumed_energy_beside_its_own_with_the_disagreement(tmp_path):
    calls, store = tmp_path / "calls", tmp_path / "g.db"
    path = _stub_sacct(tmp_path / "bin", "4242.0|RUNNING|2|1250\n4242.1|COMPLETED|1|7\n", calls)
    slurm = {"PATH": path, "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0",
             "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0"}  # fmt: skip
    proc = _run(tmp_path, slurm, store)
    assert proc.returncode == 0, proc.stderr
    (argv,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv[:2] == ["-j", "4242.0"] and "--format=JobID,State,NNodes,ConsumedEnergyRaw" in argv
    group = Store(store).get_run("slurm-4242.0")
    assert group["energy_j"] == pytest.approx(1000.0)
    (alt,) = group["energy_alternatives"]
    assert alt["meter"] == "slurm" and alt["method"] == "ConsumedEnergyRaw"
    assert alt["energy_j"] == 1250.0 and alt["job"] == "4242.0"
    assert alt["disagreement_pct"] == pytest.approx(25.0)  # (1250 - 1000) / 1000
    assert alt["state"] == "RUNNING" and alt["final"] is False
    shown = subprocess.run(
        [sys.executable, "-m", "greentrain", "show", "slurm-4242.0", "--store", str(store)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "slurm:ConsumedEnergyRaw of 4242.0 [RUNNING] (+25.0%)" in shown.stdout + shown.stderr


def test_only_the_rank_0_node_asks_sacct(tmp_path):
    calls, store = tmp_path / "calls", tmp_path / "g.db"
    path = _stub_sacct(tmp_path / "bin", "77.0|RUNNING|2|10\n", calls)
    slurm = {"PATH": path, "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0",
             "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"}  # fmt: skip
    proc = _run(tmp_path, slurm, store)
    assert proc.returncode == 0, proc.stderr
    assert not calls.exists()
    assert Store(store).get_run("slurm-77.0")["energy_alternatives"] == []


def test_no_energy_plugin_is_a_reason_never_zero_joules(tmp_path):
    calls = tmp_path / "calls"
    _stub_sacct(tmp_path / "bin", "5.0|COMPLETED|1|\n", calls)
    empty = consumed_energy("5.0", str(tmp_path / "bin" / "sacct"))
    assert empty["consumed_energy_j"] is None and "no AcctGatherEnergyType" in empty["reason"]
    assert empty["final"] is True
    _stub_sacct(tmp_path / "bin", "5.0|COMPLETED|1|18446744073709551614\n", calls)  # NO_VAL64
    no_val = consumed_energy("5.0", str(tmp_path / "bin" / "sacct"))
    assert no_val["consumed_energy_j"] is None and no_val["reason"]
    (alt,) = accounting_alternatives([{"event": "slurm accounting", **no_val}], 100.0)
    assert alt["energy_j"] is None and alt["disagreement_pct"] is None and alt["reason"]


def test_sacct_failing_is_recorded_with_its_words(tmp_path):
    stub = tmp_path / "sacct"
    stub.write_text("#!/bin/sh\necho 'sacct: error: Problem talking to the database' >&2\nexit 1\n")
    stub.chmod(0o755)
    out = consumed_energy("9.0", str(stub))
    assert out["consumed_energy_j"] is None
    assert out["reason"] == "sacct failed: sacct: error: Problem talking to the database"


def test_job_step_comes_from_slurms_environment():
    assert slurm_job({"SLURM_JOB_ID": "12", "SLURM_STEP_ID": "3"}) == "12.3"
    assert slurm_job({"SLURM_JOB_ID": "12"}) == "12"  # the batch script: the whole job
    assert slurm_job({}) is None

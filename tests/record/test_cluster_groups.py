"""Run groups: how a wrapper finds its group, and how the nodes' records read back as one run
(both store backends): totals summed over nodes, the nodes list, a failed node marking the
group, windows and metrics, CO2e at each node's own factors, runs/show/rm on a group."""

from __future__ import annotations

import json
import time

import pytest
from fixtures.store import new_run

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.run.group import detect_group
from greentrain.store import Store, ops
from greentrain.studies.sweep import finished_points

TORCHRUN = ["torchrun", "--nnodes", "2", "--nproc-per-node", "4", "--node-rank", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.1:29400"]  # fmt: skip


@pytest.mark.parametrize(
    "command, env, explicit, expected",
    [
        (["python", "t.py"], {}, "exp-7", ("exp-7", None, "--group")),
        (["python", "t.py"], {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_PROCID": "3",
                              "SLURM_STEP_NUM_TASKS": "8"}, None, ("slurm-42.0", 3, "slurm")),
        (["python", "t.py"], {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "1", "SLURM_NTASKS": "2",
                              "SLURM_CLUSTER_NAME": "jz"}, None, ("slurm-jz-42.1", None, "slurm")),
        (["python", "t.py"], {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0",
                              "SLURM_STEP_NUM_TASKS": "1"}, None, None),  # one task: one machine
        (["python", "t.py"], {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4"}, None, None),  # batch
        (["python", "t.py"], {"TORCHELASTIC_RUN_ID": "abc", "GROUP_RANK": "2"}, None,
         ("torchrun-abc", 2, "torchrun")),
        ([*TORCHRUN, "--rdzv-id", "j1", "t.py"], {}, None, ("torchrun-j1", 1, "torchrun")),
        (["python3", "-m", "torch.distributed.run", "--nnodes=1:4", "--rdzv_id=j2", "t.py"], {},
         None, ("torchrun-j2", None, "torchrun")),
        (["torchrun", "--nnodes", "1", "--rdzv-id", "j3", "t.py"], {}, None, None),
    ],
)  # fmt: skip
def test_the_group_comes_from_group_then_slurm_then_torchrun(command, env, explicit, expected):
    group, warning = detect_group(command, explicit, env)
    assert warning is None
    got = None if group is None else (group.id, group.rank, group.source)
    assert got == expected


def test_a_multi_node_torchrun_without_an_id_gets_a_warning_not_a_group():
    group, warning = detect_group([*TORCHRUN, "t.py"], None, {})
    assert group is None and "--group ID" in warning and "--rdzv-id" in warning


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, "a\nb", "tab\there"])
def test_a_bad_group_id_is_a_one_line_config_error(bad):
    with pytest.raises(ConfigError, match="--group"):
        detect_group(["true"], bad, {})


CARBON = {"intensity_g_per_kwh": 400.0, "source": "t", "year": 2024, "pue": 1.0}


def _member(st, run_id, host, rank, *, gpu_j, cpu_j, status="finished", carbon=CARBON,
            metrics=True, tags=None, group="job-1"):  # fmt: skip
    st.host = host  # as if written by that node's wrapper
    new_run(st, run_id, name="train", command=["python", "t.py"], cwd="/w", group_id=group,
            group_rank=rank, carbon=carbon, tags=tags or {"study": "s"},
            started_unix=1000.0 + rank)  # fmt: skip
    st.write(ops.UpdateConfig(run_id, params={"lr": 0.1} if rank == 0 else {}))
    for w in range(2):
        st.write(ops.BeginWindow(run_id, idx=w, name="epoch", started_unix=1001.0 + 10 * w + rank))
        rows = [dict(meter="nvml", domain="gpu", device="gpu:0", method="counter",
                     energy_j=gpu_j / 4)]  # fmt: skip
        st.write(ops.EndWindow(run_id, idx=w, ended_unix=1010.0 + 10 * w, duration_s=9.0,
                               energy_rows=rows))  # fmt: skip
    rows = [dict(meter="nvml", domain="gpu", device="gpu:0", method="counter", energy_j=gpu_j)]
    if cpu_j is not None:
        rows.append(dict(meter="rapl", domain="cpu", device="package-0", method="rapl",
                         energy_j=cpu_j))  # fmt: skip
    st.write(ops.AddEnergy(run_id, rows=rows))
    rapl = {"meter": "rapl", "available": cpu_j is not None,
            "reason": "" if cpu_j is not None else "RAPL not readable"}  # fmt: skip
    st.write(ops.SetMeters(run_id, meters=[{"meter": "nvml", "available": True}, rapl]))
    if metrics:
        logged = [{"step": e, "window": "epoch", "time_s": 10.0 * e,
                   "metrics": {"test_acc": 0.5 + e / 10}} for e in range(2)]  # fmt: skip
        st.write(ops.AddMetrics(run_id, entries=logged))
    election = {"group": group, "held": {"gpu-" + host: 1000.0}, "elsewhere": {}}
    st.write(ops.SetRunFields(run_id, fields={"election": election}))
    st.write(ops.FinishRun(run_id, status=status, exit_code=0 if status == "finished" else 1,
                           ended_unix=1030.0 + rank, duration_s=30.0))  # fmt: skip


@pytest.fixture
def grouped(store_target):
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "node-a", 0, gpu_j=3.6e6, cpu_j=1.8e6)
        _member(st, "bbbb00000000", "node-b", 1, gpu_j=1.8e6, cpu_j=None, status="failed",
                carbon={**CARBON, "intensity_g_per_kwh": 100.0}, metrics=False)  # fmt: skip
        st.host = "node-c"
        new_run(st, "cccc00000000", name="alone", command=["x"], cwd="/", started_unix=2000.0)
        st.write(ops.FinishRun("cccc00000000", status="finished", exit_code=0, ended_unix=2001.0))
    return store_target


def test_a_group_reads_as_one_run_with_totals_summed_over_its_nodes(grouped):
    with Store(grouped) as st:
        runs = st.list_runs()
        assert [r["id"] for r in runs] == ["job-1", "cccc00000000"]
        g = runs[0]
        assert g == st.get_run("job-1") == st.get_run("job-")
        member = st.get_run("bbbb")  # a member by its own id: that node alone
    assert g["group"] == "job-1" and member["group"] == "job-1" and member["nodes"] == []
    assert g["energy"]["gpu"]["energy_j"] == pytest.approx(5.4e6)
    assert g["energy"]["gpu"]["devices"] == {"node-a/gpu:0": 3.6e6, "node-b/gpu:0": 1.8e6}
    cpu = g["energy"]["cpu"]
    assert cpu["energy_j"] == pytest.approx(1.8e6)  # measured on one node only: marked
    assert (
        cpu["partial"]["missing"] == ["node-b"] and "RAPL not readable" in cpu["partial"]["reason"]
    )
    assert g["energy_kwh"] == pytest.approx(2.0)
    # each node's counted energy at its own grid: 1.5 kWh x 400 + 0.5 kWh x 100
    assert g["co2_g"] == pytest.approx(650.0)
    assert (g["status"], g["exit_code"]) == ("failed", 1)  # a failed node marks the group
    assert g["duration_s"] == pytest.approx(31.0) and g["config"] == {"lr": 0.1}
    assert [(n["host"], n["rank"], n["status"]) for n in g["nodes"]] == [
        ("node-a", 0, "finished"), ("node-b", 1, "failed")]  # fmt: skip
    assert g["nodes"][0]["devices"] == ["gpu-node-a"]
    assert g["nodes"][1]["energy"]["gpu"]["energy_j"] == 1.8e6
    assert g["nodes"][1]["co2_g"] == pytest.approx(50.0)
    assert [w["energy"]["gpu"]["energy_j"] for w in g["windows"]] == [1.35e6, 1.35e6]
    assert all(w["nodes"] == 2 for w in g["windows"])
    assert [m["test_acc"] for m in g["metrics"]] == [0.5, 0.6]  # the lead's, once


def test_a_node_stopped_by_its_budget_marks_the_group_budget(store_target):
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "node-a", 0, gpu_j=3.6e6, cpu_j=1.8e6)
        _member(st, "bbbb00000000", "node-b", 1, gpu_j=1.8e6, cpu_j=None, status="budget")
        (group,) = st.list_runs()
    assert group["status"] == "budget"
    assert [n["status"] for n in group["nodes"]] == ["finished", "budget"]


def test_filters_see_the_group_and_a_sweep_finds_a_point_that_is_a_group(store_target):
    with Store(store_target) as st:
        for k, host in enumerate(("a", "b")):
            _member(st, f"p{k}0000000000", host, k, gpu_j=1.0, cpu_j=1.0, group="pt",
                    tags={"sweep": "sw", "point": "model=m"})  # fmt: skip
        assert [r["id"] for r in st.list_runs(tags={"sweep": "sw"}, status="finished")] == ["pt"]
        assert st.list_runs(name="train")[0]["nodes"][1]["host"] == "b"
    assert finished_points("sw", store_target) == {"model=m": "pt"}


def test_a_machine_figure_covers_a_process_estimate_of_another_node_on_its_host(store_target):
    """Two wrappers of a group on one host: one metered the CPU packages (RAPL, the whole
    machine), the other had only its own processes' estimate; the group counts the CPU once."""
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "h", 0, gpu_j=10.0, cpu_j=100.0)
        st.host = "h"
        new_run(st, "bbbb00000000", name="t", command=["x"], cwd="/", group_id="job-1",
                group_rank=1, carbon=CARBON)  # fmt: skip
        st.write(ops.AddEnergy("bbbb00000000", rows=[
            dict(meter="estimate", domain="cpu", device="process-tree", method="estimated",
                 energy_j=30.0)]))  # fmt: skip
        st.write(ops.FinishRun("bbbb00000000", status="finished", exit_code=0,
                               ended_unix=time.time()))  # fmt: skip
        g = st.get_run("job-1")
    assert g["energy"]["cpu"]["energy_j"] == 100.0
    node = g["nodes"][1]["energy"]["cpu"]
    assert node["energy_j"] == 30.0 and not node["counted"] and node["covered_by"] == "aaaa00000000"


def test_cli_lists_shows_and_deletes_a_group(grouped, capsys):
    assert main(["runs", "--store", grouped]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "job-1" in lines[1] and " 2 " in lines[1]
    assert lines[3].startswith("total 2 runs:")  # the listing's total line
    assert main(["show", "job-1", "--store", grouped]) == 0
    out = capsys.readouterr().out
    assert "nodes (2; group job-1)" in out and "node-b" in out and "metered gpu-node-a" in out
    assert main(["show", "job-1", "--store", grouped, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["nodes"]) == 2
    assert main(["rm", "job-1", "--store", grouped, "--yes"]) == 0
    assert "deleted job-1 (2 runs)" in capsys.readouterr().out
    with Store(grouped) as st:
        assert [r["id"] for r in st.list_runs()] == ["cccc00000000"]

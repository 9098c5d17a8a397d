"""Groups that know their launch and size, read with real stores (both backends):

* the size a group expects and its launch id come from ``--group-size``, torchrun, SLURM;
* a reused group id never merges two launches (``G`` -> ``G#2``);
* ranks from what the workers report, the lead following global rank 0;
* ``k of N nodes`` and ``incomplete`` in the group object, ``runs`` and ``show``;
* a node whose heartbeat stopped is marked ``node lost`` by a reader on any host, by hand with
  ``store mark``, and ``store merge --skip-running`` leaves running runs out;
* the device election keyed by host identity; a group budget's view of the group's spend.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.record.group_size import nodes_text
from greentrain.run.budget import Budget, BudgetGuard
from greentrain.run.election import Election
from greentrain.run.group import GroupInfo, detect_group
from greentrain.run.group_budget import GroupSpendPoller, group_spend_for
from greentrain.run.identity import host_identity
from greentrain.run.launch import JOIN_S, place
from greentrain.run.options import RunOptions
from greentrain.run.ranks import WorkerRanks, ranks_of
from greentrain.store import Store, ops
from greentrain.store.liveness import heartbeat_bound_s, node_lost

NNODES = ["torchrun", "--nnodes", "1:4", "--rdzv-id", "r1", "t.py"]


@pytest.mark.parametrize(
    "command, env, size, expected",
    [
        (NNODES, {"PET_NNODES": "2"}, 3, (3, "--group-size")),
        (NNODES, {"PET_NNODES": "2"}, None, (4, "--nnodes")),
        (["python", "t.py"], {"TORCHELASTIC_RUN_ID": "r", "PET_NNODES": "2"}, None,
         (2, "PET_NNODES")),
        (["python", "t.py"], {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NNODES": "2",
                              "SLURM_STEP_NUM_TASKS": "8"}, None, (8, "SLURM_STEP_NUM_TASKS")),
        (["python", "t.py"], {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"},
         None, (4, "SLURM_NTASKS")),
        (["python", "t.py"], {"SLURM_JOB_ID": "7", "SLURM_NNODES": "3"}, None,
         (3, "SLURM_NNODES")),
        (["python", "t.py"], {}, None, (None, None)),
    ],
)  # fmt: skip
def test_the_expected_size_comes_from_group_size_then_nnodes_pet_nnodes_and_slurm(
    command, env, size, expected
):
    group, _ = detect_group(command, "g", env, size=size)
    assert (group.size, group.size_source) == expected


@pytest.mark.parametrize(
    "env, command, expected",
    [
        ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"},
         ["python", "t.py"], ("slurm-42.0", True)),
        ({"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_RESTART_COUNT": "1",
          "SLURM_CLUSTER_NAME": "jz"}, ["python", "t.py"], ("slurm-jz-42.0.r1", True)),
        ({"GREENTRAIN_LAUNCH_ID": "mine-3", "SLURM_JOB_ID": "42"}, ["python", "t.py"],
         ("mine-3", True)),
        ({}, NNODES, ("torchrun-r1", False)),
        ({"TORCHELASTIC_RUN_ID": "e9"}, ["python", "t.py"], ("torchrun-e9", False)),
        ({}, ["python", "t.py"], (None, False)),
    ],
)  # fmt: skip
def test_the_launch_id_is_unique_for_slurm_and_explicit_ids_not_for_torchrun(
    env, command, expected
):
    group, _ = detect_group(command, "g", env)
    assert (group.launch, group.launch_unique) == expected


def test_a_group_size_below_one_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="--group-size"):
        RunOptions(group_size=0)


def _row(group, launch, status="finished", started=1000.0, size=None, rid="r"):
    return {"id": rid, "group_id": group, "launch_id": launch, "status": status,
            "started_unix": started, "group_size": size}  # fmt: skip


def test_a_reused_group_id_of_an_ended_launch_becomes_a_new_group_with_its_own_launch():
    info = GroupInfo("G1", 0, "--group", size=2, launch=None)
    first = [_row("G1", "launch~aa", rid="a"), _row("G1", "launch~aa", rid="b")]
    placed, line = place(info, first, now=2000.0)
    assert placed.id == "G1#2" and placed.launch.startswith("launch~")
    assert placed.launch != "launch~aa" and "recorded as group G1#2" in line
    later = first + [_row("G1#2", placed.launch, rid="c")]
    assert place(info, later, now=3000.0)[0].id == "G1#3"
    assert place(info, [], now=3000.0)[0].id == "G1"  # an unused id stays itself


def test_a_wrapper_joins_its_launch_while_it_is_open_and_only_then():
    info = GroupInfo("torchrun-r", 1, "torchrun", size=2, launch="torchrun-r")
    running = [_row("torchrun-r", "torchrun-r~bb", "running", started=1000.0, size=2)]
    placed, line = place(info, running, now=1010.0)
    assert (placed.id, placed.launch, line) == ("torchrun-r", "torchrun-r~bb", None)
    late = place(info, running, now=1000.0 + JOIN_S + 1)[0]
    assert late.id == "torchrun-r#2"  # too late to be the same rendezvous
    full = running + [_row("torchrun-r", "torchrun-r~bb", "running", size=2, rid="x")]
    assert place(info, full, now=1010.0)[0].id == "torchrun-r#2"  # it has all its nodes
    other = [_row("torchrun-r", "torchrun-q~cc", "running", started=1000.0)]
    assert place(info, other, now=1010.0)[0].id == "torchrun-r#2"  # another torchrun id


def test_a_unique_launch_finds_its_own_group_even_after_another_launch():
    requeued = GroupInfo("slurm-42.0", 0, "slurm", launch="slurm-42.0.r1", launch_unique=True)
    rows = [_row("slurm-42.0", "slurm-42.0", rid="a"),
            _row("slurm-42.0#2", "slurm-42.0.r1", "running", rid="b")]  # fmt: skip
    assert place(requeued, rows[:1], now=0.0)[0].id == "slurm-42.0#2"
    assert place(requeued, rows, now=0.0) == (
        GroupInfo("slurm-42.0#2", 0, "slurm", launch="slurm-42.0.r1", launch_unique=True),
        None,
    )


def test_ranks_come_from_the_workers_environment_not_the_launcher():
    assert ranks_of([{"RANK": "3", "GROUP_RANK": "1"}, {"RANK": "2", "GROUP_RANK": "1"},
                     {"PATH": "/bin"}]) == {"global_rank": 2, "group_rank": 1}  # fmt: skip
    assert ranks_of([{"PATH": "/bin"}]) == {}
    env = dict(os.environ, RANK="0", GROUP_RANK="1", LOCAL_RANK="0")
    worker = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], env=env,
                              stdin=subprocess.PIPE)  # fmt: skip
    try:
        ranks = WorkerRanks()
        deadline = time.monotonic() + 60  # until the child has exec'd with its environment
        found = ranks.update([worker.pid])
        while not found and time.monotonic() < deadline:
            time.sleep(0.01)
            found = ranks.update([worker.pid])
        assert found == {"global_rank": 0, "group_rank": 1}
        assert ranks.update([worker.pid]) == {}  # nothing changed: nothing to store
    finally:
        worker.communicate(b"")


def _member(st, run_id, host, *, group="G", rank=None, global_rank=None, size=None,
            status="finished", beat=None, period=None, started=1000.0, gpu_j=100.0,
            first_beat_s=0.0):  # fmt: skip
    st.write(ops.CreateRun(run_id, name="train", command=[f"cmd-{run_id}"], cwd="/w",
                           started_unix=started, host=host, pid=1, group_id=group,
                           group_rank=rank, group_size=size, launch_id="L",
                           heartbeat_s=period, first_beat_s=first_beat_s))  # fmt: skip
    if global_rank is not None:
        st.write(ops.SetRunFields(run_id, fields={"global_rank": global_rank}))
    st.write(ops.AddSample(run_id, seq=0, t=started, cpu_s=0.0, readings=[]))
    st.write(
        ops.AddEnergy(
            run_id,
            window_idx=-1,
            rows=[
                dict(meter="nvml", domain="gpu", device="gpu:0", method="counter", energy_j=gpu_j)
            ],
        )
    )
    if beat is not None:
        st.write(ops.AddSample(run_id, seq=1, t=beat, cpu_s=1.0, readings=[]))
    if status != "running":
        st.write(ops.FinishRun(run_id, status=status, exit_code=0, ended_unix=started + 30,
                               duration_s=30.0))  # fmt: skip


def test_the_lead_is_the_node_of_global_rank_zero_whatever_the_node_ranks_say(store_target):
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "vm-a", rank=0, global_rank=4, size=2)
        _member(st, "bbbb00000000", "vm-b", rank=1, global_rank=0, size=2)
        group = st.get_run("G")
    assert [n["run_id"] for n in group["nodes"]] == ["bbbb00000000", "aaaa00000000"]
    assert group["command"] == ["cmd-bbbb00000000"] and group["nodes"][0]["global_rank"] == 0
    assert group["launch"] == "L"


def test_a_partial_group_says_k_of_n_nodes_and_is_incomplete_everywhere(store_target, capsys):
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "vm-a", rank=0, size=2)
        group = st.get_run("G")
    assert group["size"] == {"expected": 2, "seen": 1, "complete": False}
    assert group["incomplete"] is True and group["status"] == "finished"
    assert group["totals_note"] == "1 of 2 nodes: the totals count only the nodes "\
        "recorded"  # fmt: skip
    assert main(["runs", "--store", store_target]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "finished (incomplete)" in row and "1 of 2" in row
    assert main(["show", "G", "--store", store_target]) == 0
    out = capsys.readouterr().out
    assert "incomplete: 1 of 2 nodes" in out and "nodes (1 of 2 nodes (incomplete); group G" in out
    assert main(["export", "--store", store_target, "--format", "json", "--run", "G"]) == 0
    assert '"incomplete": true' in capsys.readouterr().out
    assert main(["export", "--store", store_target, "--format", "statement", "--run", "G"]) == 0
    assert "1 run is a run group with fewer nodes recorded than expected (1 of 2 nodes: the "\
        "totals count only the nodes recorded)" in capsys.readouterr().out  # fmt: skip


def test_a_complete_group_and_one_of_unknown_size_are_not_incomplete():
    assert nodes_text({"seen": 2, "expected": 2, "complete": True}) == "2 of 2 nodes"
    assert nodes_text({"seen": 3, "expected": None, "complete": True}) == "3 nodes"


def test_a_node_without_heartbeat_past_its_bound_is_lost_only_then():
    row = {"status": "running", "heartbeat_s": 10.0, "heartbeat_unix": 1000.0,
           "started_unix": 900.0}  # fmt: skip
    bound = heartbeat_bound_s(10.0)
    assert bound == 35.0  # 3 sample periods + 5 s for the hosts' clocks
    assert not node_lost(row, now=1000.0 + bound - 1)
    assert node_lost(row, now=1000.0 + bound + 1)
    assert not node_lost(dict(row, heartbeat_s=None), now=1e9)  # --sample-s 0: never from afar
    assert not node_lost(dict(row, status="finished"), now=1e9)


def test_a_reader_on_another_host_marks_a_lost_node_interrupted_at_its_last_sample(tmp_path):
    path = str(tmp_path / "s.db")
    now = time.time()
    with Store(path) as st:
        st.host = "far-away"
        _member(st, "aaaa00000000", "far-away", status="running", period=0.5, started=now - 60,
                beat=now - 50, gpu_j=250.0)  # fmt: skip
        _member(st, "bbbb00000000", "far-away", status="running", period=0.5, started=now - 2,
                beat=now, group="H")  # fmt: skip
        _member(
            st,
            "cccc00000000",
            "far-away",
            status="running",
            period=0.5,
            started=now - 30,
            group="B",
            first_beat_s=120.0,
        )  # a 120 s baseline: no sample yet, not lost
    with Store(path, read_only=True) as ro:  # reports it, writes nothing
        assert ro.get_run("aaaa")["status"] == "interrupted"
    with Store(path) as st:
        assert st.statuses(["aaaa00000000"]) == {"aaaa00000000": "running"}
        run = st.get_run("aaaa")
        assert st.get_run("bbbb")["status"] == "running"  # its heartbeat is fresh
        assert st.get_run("cccc")["status"] == "running"  # its first beat is after its baseline
    assert run["status"] == "interrupted" and run["energy"]["gpu"]["energy_j"] == 250.0
    assert run["duration_s"] == pytest.approx(10.0)  # ended at its last sample
    [event] = [e for e in run["events"] if e["event"] == "node lost"]
    assert "no heartbeat from far-away" in event["detail"]


def test_store_mark_interrupts_a_running_group_by_hand_and_refuses_a_finished_one(tmp_path, capsys):
    path = str(tmp_path / "s.db")
    with Store(path) as st:
        _member(st, "aaaa00000000", st.host, status="running", started=time.time())
        _member(st, "bbbb00000000", st.host, status="finished")
    assert main(["store", "mark", "G", "--interrupted", "--store", path]) == 0
    assert "marked 1 run(s) interrupted: aaaa00000000" in capsys.readouterr().out
    with Store(path) as st:
        run = st.get_run("aaaa")
    assert run["status"] == "interrupted"
    assert [e["event"] for e in run["events"]] == ["marked interrupted"]
    assert main(["store", "mark", "bbbb", "--interrupted", "--store", path]) == 2
    assert "is not running: nothing to mark" in capsys.readouterr().err
    assert main(["store", "mark", "bbbb", "--store", path]) == 2


def test_store_merge_skip_running_leaves_running_runs_out_and_lists_them(tmp_path, capsys):
    node = str(tmp_path / "node.db")
    with Store(node) as st:
        _member(st, "aaaa00000000", st.host, status="running", started=time.time())
        _member(st, "bbbb00000000", st.host)
    into = str(tmp_path / "all.db")
    assert main(["store", "merge", node, "--into", into]) == 2
    assert "--skip-running" in capsys.readouterr().err
    assert main(["store", "merge", node, "--into", into, "--skip-running"]) == 0
    assert "left out, still running: aaaa00000000" in capsys.readouterr().out
    with Store(into) as st:
        assert [n["run_id"] for n in st.get_run("G")["nodes"]] == ["bbbb00000000"]


def test_hosts_sharing_a_lock_folder_each_meter_their_own_devices(tmp_path):
    assert host_identity(hostname="a") != host_identity(hostname="b")
    ids = tmp_path / "machine-id"
    ids.write_text("0123\n")
    assert host_identity([str(ids)], "a") != host_identity(["/nonexistent"], "a")
    here = Election("g", "run-a", tmp_path, host=host_identity(hostname="node-a"))
    there = Election("g", "run-b", tmp_path, host=host_identity(hostname="node-b"))
    same_host = Election("g", "run-c", tmp_path, host=host_identity(hostname="node-a"))
    assert here.holds("cpu") and there.holds("cpu")  # one folder, two hosts: both meter
    assert not same_host.holds("cpu") and same_host.elsewhere == {"cpu": "run-a"}
    assert here.summary()["host"] == host_identity(hostname="node-a")


def test_a_group_budget_sees_the_other_members_spend_and_stops_when_one_tripped(store_target):
    with Store(store_target) as st:
        _member(st, "aaaa00000000", "vm-a", status="running", started=time.time(), gpu_j=3000.0)
        _member(st, "bbbb00000000", "vm-b", status="running", started=time.time(), gpu_j=500.0)
        spend = GroupSpendPoller(lambda: st, "G", "cccc00000000", own=lambda: 100.0)
        spend.refresh()
        assert spend.spent_j() == pytest.approx(3600.0) and spend.stopped() == []
        limit = Budget(kwh=0.01)  # 36 kJ: not reached
        calls = []
        guard = BudgetGuard(limit, intensity_g_per_kwh=400.0, pue=1.0, spent_j=spend.spent_j,
                            stop=calls.append, stopped_elsewhere=spend.stopped,
                            say=lambda _: None)  # fmt: skip
        assert guard.check() is None
        st.write(ops.AddEvents("bbbb00000000", events=[{"t": 1.0, "event": "budget reached"}]))
        spend.refresh()
        tripped = guard.check()
    assert tripped["reason"] == "group" and tripped["stopped_by"] == ["bbbb00000000"]
    assert calls == [tripped]
    assert Budget(kwh=1.0, per_node=True).to_dict()["per_node"] is True


@pytest.mark.slow
def test_the_app_says_k_of_n_nodes_and_warns_of_an_incomplete_group(tmp_path, monkeypatch):
    apptest = pytest.importorskip("streamlit.testing.v1")

    path = str(tmp_path / "s.db")
    with Store(path) as st:
        _member(st, "aaaa00000000", "vm-a", rank=0, size=2)
    monkeypatch.setenv("GREENTRAIN_APP_STORE", path)
    views = pathlib.Path(__file__).resolve().parents[2] / "app" / "views"
    runs_page = apptest.AppTest.from_file(str(views / "runs.py"), default_timeout=60)
    runs_page.run()
    assert not runs_page.exception
    assert list(runs_page.dataframe[0].value["nodes"]) == ["1 of 2 (incomplete)"]
    run_page = apptest.AppTest.from_file(str(views / "run.py"), default_timeout=60)
    run_page.run()
    assert not run_page.exception
    assert any("Incomplete run group: 1 of 2 nodes" in w.value for w in run_page.warning)


def test_a_budget_per_node_or_outside_a_group_checks_only_the_nodes_own_spend():
    def session(budget, group):
        return SimpleNamespace(opts=SimpleNamespace(budget=budget), group=group, run_id="r",
                               writes=SimpleNamespace(store=lambda: None),
                               recorder=SimpleNamespace(spent_j=lambda: 1.0))  # fmt: skip

    group = GroupInfo("G", 0, "--group")
    assert group_spend_for(session(Budget(kwh=1.0, per_node=True), group)) is None
    assert group_spend_for(session(Budget(kwh=1.0), None)) is None
    assert group_spend_for(session(Budget(), group)) is None
    whole = group_spend_for(session(Budget(kwh=1.0), group))
    assert whole.group_id == "G" and whole.spent_j() == 1.0  # the store not open yet: its own

"""Run groups end to end, with real wrappers, a second hostname and real torchrun (gloo):

* a node lost whole (its wrapper, watchdog and job killed at once, on another hostname through
  ``unshare``) is marked ``node lost`` by a reader here once its heartbeat is past the bound;
  ``store merge --skip-running`` leaves it out while it runs;
* two hosts sharing one lock folder each meter their own CPU (election by host identity);
* a group id reused by a second launch gives a second group, ``G1#2``;
* a group budget stops the whole group at the group's limit (each node spending a part);
* with ``--rdzv-backend c10d`` torchrun ignores ``--node-rank``: the ranks recorded are the
  ones the workers report, and the lead is global rank 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import pytest
from fixtures.waiting import wait_until

from greentrain.cli import main
from greentrain.report.runs import parse_time
from greentrain.store import Store

pytestmark = pytest.mark.slow

PY = sys.executable
SLEEPER = "import time\nfor _ in range(600):\n    time.sleep(0.1)\n"


def _fake(uuid_: str, power_w: float = 100.0, cpu: bool = True) -> str:
    channels = [{"domain": "gpu", "device": "gpu:0", "power_w": power_w,
                 "detail": {"uuid": uuid_}}]  # fmt: skip
    if cpu:
        channels.append({"domain": "cpu", "device": "package-0", "power_w": power_w,
                         "method": "rapl"})  # fmt: skip
    return json.dumps({"channels": channels})


def _env(tmp_path, gpu: str, **extra: str) -> dict[str, str]:
    return dict(os.environ, GREENTRAIN_FAKE_METER=_fake(gpu), GLOO_SOCKET_IFNAME="lo",
                GREENTRAIN_LOCK_DIR=str(tmp_path / "locks"), **extra)  # fmt: skip


def _run_argv(store: str, command: list[str], *extra: str) -> list[str]:
    return [PY, "-m", "greentrain", "run", "--store", store, "--meter", "fake", "--sample-s",
            "0.3", *extra, "--", *command]  # fmt: skip


def _elsewhere(hostname: str, argv: list[str], *, pid_ns: bool = False) -> list[str]:
    """``argv`` on another hostname (a user and UTS namespace; with ``pid_ns`` a PID namespace
    too, so that killing its first process kills every process of the "node")."""
    flags = ["-Urmup", "--fork", "--mount-proc", "--kill-child"] if pid_ns else ["-Uru"]
    return ["unshare", *flags, "sh", "-c", f'hostname {hostname} && exec "$@"', "sh", *argv]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(_elsewhere("probe", ["true"], pid_ns=True), capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(), reason="unshare -Urmup is not allowed")


def _runs_with_samples(path: str) -> list[dict]:
    with Store(path, read_only=True) as st:
        runs = st.list_runs()
    return [r for r in runs if r["status"] == "running" and r["energy"]["gpu"]["energy_j"]]


@needs_unshare
def test_a_node_lost_whole_on_another_host_is_marked_node_lost_by_a_reader_here(tmp_path, capsys):
    store = str(tmp_path / "s.db")
    Store(store).close()  # the store exists before the node writes to it (polled below)
    node = subprocess.Popen(
        _elsewhere("node-far", _run_argv(store, [PY, "-c", SLEEPER], "--group", "far"),
                   pid_ns=True),
        env=_env(tmp_path, "GPU-far"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        [group] = wait_until(lambda: _runs_with_samples(store))
        assert group["nodes"][0]["host"] == "node-far"
        assert main(["store", "merge", store, "--into", str(tmp_path / "m.db"),
                     "--skip-running"]) == 0  # fmt: skip
        assert "left out, still running" in capsys.readouterr().out
    finally:
        node.send_signal(signal.SIGKILL)  # the node dies whole: wrapper, watchdog and job
        node.wait(timeout=60)

    def lost() -> dict | None:
        with Store(store) as st:  # a reader on this host, which is not node-far
            run = st.get_run("far")
        return run if run["status"] == "interrupted" else None

    group = wait_until(lost, every_s=0.5)
    [member] = group["nodes"]
    with Store(store) as st:
        run = st.get_run(member["run_id"])
    [event] = [e for e in run["events"] if e["event"] == "node lost"]
    assert "no heartbeat from node-far" in event["detail"]
    assert run["energy"]["gpu"]["energy_j"] > 0  # the energy to its last sample
    assert run["duration_s"] == pytest.approx(event["heartbeat_unix"] - run_start(run), abs=0.01)


def run_start(run: dict) -> float:
    return parse_time(run["started_at"]).timestamp()


@needs_unshare
def test_two_hosts_sharing_one_lock_folder_each_meter_their_own_cpu(tmp_path):
    store = str(tmp_path / "s.db")
    job = [PY, "-c", "import time; time.sleep(1.5)"]
    argv = _run_argv(store, job, "--group", "hosts")
    procs = [
        subprocess.Popen(argv, env=_env(tmp_path, "GPU-a"), stderr=subprocess.DEVNULL),
        subprocess.Popen(_elsewhere("node-b", argv), env=_env(tmp_path, "GPU-b"),
                         stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Store(store) as st:
        [group] = st.list_runs()
    assert sorted(n["host"] for n in group["nodes"]) == sorted([socket.gethostname(), "node-b"])
    for n in group["nodes"]:
        assert "cpu" in n["devices"] and n["metered_elsewhere"] == {}
    assert group["energy"]["cpu"]["nodes"] == 2


def test_a_group_id_reused_by_a_second_launch_is_recorded_as_a_second_group(tmp_path):
    store = str(tmp_path / "s.db")
    job = [PY, "-c", "import time; time.sleep(0.5)"]
    outputs = []
    for launch in range(2):
        procs = [
            subprocess.Popen(_run_argv(store, job, "--group", "G1", "--group-size", "2"),
                             env=_env(tmp_path / f"l{launch}n{r}", f"GPU-{r}"),
                             stderr=subprocess.PIPE, text=True)
            for r in range(2)
        ]  # fmt: skip
        outputs.append([p.communicate(timeout=120)[1] for p in procs])
        assert [p.returncode for p in procs] == [0, 0], outputs[-1]
    with Store(store) as st:
        groups = {r["id"]: r for r in st.list_runs()}
    assert sorted(groups) == ["G1", "G1#2"]
    for group in groups.values():
        assert group["size"] == {"expected": 2, "seen": 2, "complete": True}
        assert group["incomplete"] is False
    assert any("recorded as group G1#2" in text for text in outputs[1])
    assert groups["G1"]["launch"] != groups["G1#2"]["launch"]


def test_a_group_budget_stops_every_node_at_the_whole_groups_limit(tmp_path):
    store = str(tmp_path / "s.db")
    limit_j = 3600.0  # --budget-kwh 0.001
    procs = [
        subprocess.Popen(
            _run_argv(store, [PY, "-c", SLEEPER], "--group", "gb", "--budget-kwh", "0.001",
                      "--grace", "5"),
            env=dict(_env(tmp_path / f"n{r}", f"GPU-{r}"),
                     GREENTRAIN_FAKE_METER=_fake(f"GPU-{r}", 1000.0, cpu=False)),
            stderr=subprocess.PIPE, text=True)
        for r in range(2)
    ]  # fmt: skip
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [124, 124], errors
    with Store(store) as st:
        [group] = st.list_runs()
    assert group["status"] == "budget"
    nodes_j = [n["energy_j"] for n in group["nodes"]]
    assert all(j < limit_j for j in nodes_j)  # per-node budgets would let each spend 3600 J
    assert group["energy_j"] >= 0.95 * limit_j
    reached = [e for e in group["events"] if e["event"] == "budget reached"]
    assert len(reached) == 2 and all(e["budget"]["per_node"] is False for e in reached)


GLOO_JOB = """
import os, time
import torch
import torch.distributed as dist
from greentrain import client
from greentrain.store import Store

dist.init_process_group("gloo")
client.config(world=dist.get_world_size())
with client.window("epoch", epoch=0):
    t = torch.ones(1)
    dist.all_reduce(t)
    client.log(step=0, who=dist.get_rank())
run_id = os.environ["GREENTRAIN_RUN"]


def reported():
    with Store(os.environ["STORE"], read_only=True) as st:
        nodes = st.get_run(os.environ["GROUP"])["nodes"]
    return [n for n in nodes if n["run_id"] == run_id and n["global_rank"] is not None]


deadline = time.monotonic() + 120  # until this node's wrapper has recorded the ranks
while not reported() and time.monotonic() < deadline:
    time.sleep(0.1)
with open(os.path.join(os.environ["OUT"], run_id), "w") as fh:
    fh.write(f"{os.environ['RANK']} {os.environ['GROUP_RANK']}")
dist.barrier()
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_c10d_the_ranks_are_the_workers_and_the_lead_holds_global_rank_zero(tmp_path):
    store, job, out = str(tmp_path / "s.db"), tmp_path / "job.py", tmp_path / "ranks"
    job.write_text(GLOO_JOB)
    out.mkdir()
    port, rdzv = _free_port(), f"c{uuid.uuid4().hex[:8]}"
    torchrun = [
        PY,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--node-rank",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        rdzv,
        str(job),
    ]  # both say --node-rank 1
    procs = [
        subprocess.Popen(_run_argv(store, torchrun),
                         env=_env(tmp_path / f"n{r}", f"GPU-{r}", STORE=store, OUT=str(out),
                                  GROUP=f"torchrun-{rdzv}"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with Store(store) as st:
        [group] = st.list_runs()
    told = {f.name: tuple(map(int, f.read_text().split())) for f in out.iterdir()}
    for n in group["nodes"]:
        assert (n["global_rank"], n["rank"]) == told[n["run_id"]]
    assert sorted(n["rank"] for n in group["nodes"]) == [0, 1]  # not the [1, 1] they were told
    assert group["nodes"][0]["global_rank"] == 0
    assert [m["who"] for m in group["metrics"]] == [0]  # the lead's metrics: global rank 0
    assert group["size"]["expected"] == 2 and group["incomplete"] is False


def test_a_requeued_slurm_job_step_is_recorded_as_a_second_group_of_its_own_launch(tmp_path):
    store = str(tmp_path / "s.db")
    job = [PY, "-c", "import time; time.sleep(0.3)"]
    for restarts in ("0", "1"):  # the job step, then the same step after a requeue
        procs = [
            subprocess.Popen(_run_argv(store, job),
                             env=_env(tmp_path / f"r{restarts}n{r}", f"GPU-{r}", SLURM_JOB_ID="42",
                                      SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2",
                                      SLURM_PROCID=str(r), SLURM_RESTART_COUNT=restarts),
                             stderr=subprocess.PIPE, text=True)
            for r in range(2)
        ]  # fmt: skip
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
    with Store(store) as st:
        groups = {r["id"]: r for r in st.list_runs()}
    assert {g: r["launch"] for g, r in groups.items()} == {
        "slurm-42.0": "slurm-42.0", "slurm-42.0#2": "slurm-42.0.r1"}  # fmt: skip
    for group in groups.values():
        assert group["size"] == {"expected": 2, "seen": 2, "complete": True}
        assert sorted(n["rank"] for n in group["nodes"]) == [0, 1]

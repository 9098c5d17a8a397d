"""Two "nodes" on one machine, end to end.

* Two ``greentrain run`` wrappers each start ``torchrun --nnodes 2 --node-rank R`` with a c10d
  rendezvous on 127.0.0.1 and a tiny gloo job; both write to one PostgreSQL store. They make
  one group (torchrun's ``--rdzv-id``), two node rows, metrics from global rank 0 only,
  windows on both nodes, and the group's energy is the sum of the two.
* Two ``greentrain run --group ID`` wrappers write to an SQLite file each (a cluster without a
  shared database); ``greentrain store merge`` joins them into one store (a file, and a
  PostgreSQL database) where they read as the same group. The ranks here are plain processes
  with torchrun's ``RANK``/``LOCAL_RANK`` (no torch import: the rendezvous is the first
  test's).

Each "node" has its own lock folder and its own fake GPU (``GPU-node<R>``), as two machines do.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid

import pytest

from greentrain.cli import main
from greentrain.store import Store

PY = sys.executable
GLOO_JOB = """
import torch
import torch.distributed as dist
from greentrain import client

dist.init_process_group("gloo")
rank = dist.get_rank()
client.config(world=dist.get_world_size())
for epoch in range(2):
    with client.window("epoch", epoch=epoch):
        t = torch.ones(1) * (rank + 1)
        dist.all_reduce(t)
        client.log(step=epoch, total=float(t.item()), who=rank)
dist.destroy_process_group()
"""
PLAIN_JOB = """
import os
from greentrain import client

client.config(world=2)
for epoch in range(2):
    with client.window("epoch", epoch=epoch):
        client.log(step=epoch, who=int(os.environ["RANK"]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_env(tmp_path, rank: int, **extra: str) -> dict[str, str]:
    fake = {"channels": [{"domain": "gpu", "device": "gpu:0", "power_w": 100.0,
                          "detail": {"uuid": f"GPU-node{rank}"}}]}  # fmt: skip
    return dict(os.environ, GREENTRAIN_FAKE_METER=json.dumps(fake), GLOO_SOCKET_IFNAME="lo",
                GREENTRAIN_LOCK_DIR=str(tmp_path / f"locks{rank}"), **extra)  # fmt: skip


def _wrapper(store: str, command: list[str], env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", store, "--meter", "fake", "--sample-s", "0.5",
         *extra, "--", *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _check_group(group: dict, group_id: str) -> None:
    assert group["id"] == group_id and group["status"] == "finished"
    assert sorted(n["rank"] for n in group["nodes"]) == [0, 1]
    assert [m["who"] for m in group["metrics"]] == [0, 0]  # global rank 0 only
    nodes_gpu = [n["energy"]["gpu"]["energy_j"] for n in group["nodes"]]
    assert group["energy"]["gpu"]["energy_j"] == pytest.approx(sum(nodes_gpu))
    for n in group["nodes"]:
        assert n["energy"]["gpu"]["energy_j"] == pytest.approx(100.0 * n["duration_s"], rel=0.1)
    assert sorted(n["devices"] for n in group["nodes"]) == [["gpu-GPU-node0"], ["gpu-GPU-node1"]]
    assert [w["nodes"] for w in group["windows"]] == [2, 2]  # each node marked the epochs
    assert group["config"]["world"] == 2


def test_two_torchrun_nodes_into_one_postgresql_store_make_one_group(tmp_path, pg_url):
    job = tmp_path / "job.py"
    job.write_text(GLOO_JOB)
    port, rdzv = _free_port(), f"t{uuid.uuid4().hex[:8]}"
    procs = [
        _wrapper(pg_url, ["torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
                          str(r), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                          "--rdzv-id", rdzv, str(job)], _node_env(tmp_path, r))
        for r in (0, 1)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with Store(pg_url) as st:
        [group] = st.list_runs()
        members = [st.get_run(n["run_id"]) for n in group["nodes"]]
    _check_group(group, f"torchrun-{rdzv}")
    assert [m["total"] for m in group["metrics"]] == [3.0, 3.0]  # the all-reduce ran
    assert sorted(len(m["metrics"]) for m in members) == [0, 2]
    assert all(len(m["windows"]) == 2 for m in members)


def test_two_group_wrappers_into_sqlite_files_merge_into_one_group(tmp_path, pg_url, capsys):
    files = [str(tmp_path / f"node{r}.db") for r in (0, 1)]
    procs = [
        _wrapper(files[r], [PY, "-c", PLAIN_JOB],
                 _node_env(tmp_path, r, RANK=str(r), LOCAL_RANK="0", SLURM_PROCID=str(r)),
                 "--group", "exp-1")
        for r in (0, 1)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    into = str(tmp_path / "all.db")
    for target in (into, pg_url):
        assert main(["store", "merge", *files, "--into", target]) == 0
        assert "merged 2 runs from 2 stores" in capsys.readouterr().out
        with Store(target) as st:
            [group] = st.list_runs()
        _check_group(group, "exp-1")
    with Store(into) as a, Store(pg_url) as b:
        assert a.get_run("exp-1") == b.get_run("exp-1")

"""Across nodes, the client reports config and metrics from global rank 0 only, and marks
windows from every node's local rank 0 (each node's wrapper reads its meters there)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

PY = sys.executable
CHILD = """
from greentrain import client
client.config(a=1)
with client.window("epoch"):
    client.log(step=0, x=1)
"""


@pytest.mark.parametrize(
    "env, kinds",
    [
        ({"RANK": "0", "LOCAL_RANK": "0"}, ["config", "wb", "log", "we"]),
        ({"RANK": "4", "LOCAL_RANK": "0"}, ["wb", "we"]),  # node 1's first rank: windows only
        ({"RANK": "5", "LOCAL_RANK": "1"}, []),
        ({"SLURM_PROCID": "2"}, ["wb", "we"]),  # a SLURM task of its own wrapper
        ({"SLURM_PROCID": "0"}, ["config", "wb", "log", "we"]),
        ({"RANK": "3", "GREENTRAIN_LOG_ALL_RANKS": "1"}, ["config", "wb", "log", "we"]),
    ],
)
def test_ranks_report_metrics_from_global_rank_0_and_windows_per_node(tmp_path, env, kinds):
    path = str(tmp_path / "ch")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("RANK", "LOCAL_RANK", "SLURM_PROCID")}  # fmt: skip
    child_env.update(env, GREENTRAIN_RUN="r1", GREENTRAIN_CHANNEL=path)
    proc = subprocess.Popen([PY, "-c", CHILD], env=child_env)
    data = b""
    if kinds:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                data += chunk
    assert proc.wait(timeout=60) == 0
    server.close()
    assert [json.loads(line)["k"] for line in data.splitlines()] == kinds

"""A process forked while another thread logs never hangs, and logs on its own connection:
``os.fork`` in a loop, a ``multiprocessing`` pool and a DataLoader with workers, each as a user
would write it, under a real ``greentrain run``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from greentrain.store import Store

PY = sys.executable


def _run(tmp_path, script: str, timeout_s: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(script))
    store = tmp_path / "g.db"
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--", PY,
         str(path)], capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    return out, Store(store).list_runs()[0]


FORK_WHILE_LOGGING = """
import os, sys, threading, time
from greentrain import client

stop = threading.Event()
def spin():
    n = 0
    while not stop.is_set():
        client.log(step=n, spin=1.0)
        n += 1
thread = threading.Thread(target=spin)
thread.start()
children = []
for i in range(20):
    pid = os.fork()
    if pid == 0:
        client.log(step=i, child=float(i))
        os._exit(0)
    children.append(pid)
deadline, hung = time.monotonic() + 120, 0
for pid in children:
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.01)
stop.set()
thread.join()
print("hung", hung)
sys.exit(3 if hung else 0)
"""


def test_twenty_children_forked_while_a_thread_logs_none_hangs_and_each_logs(tmp_path):
    out, run = _run(tmp_path, FORK_WHILE_LOGGING)
    assert "hung 0" in out.stdout, out.stdout + out.stderr
    assert (run["status"], run["exit_code"]) == ("finished", 0)
    children = sorted(m["child"] for m in run["metrics"] if "child" in m)
    assert children == [float(i) for i in range(20)]


POOL = """
import multiprocessing as mp
from greentrain import client

def work(i):
    client.log(step=i, square=float(i * i))
    return i

if __name__ == "__main__":
    with mp.get_context("fork").Pool(4) as pool:
        assert pool.map(work, range(40)) == list(range(40))
"""


def test_a_multiprocessing_pools_workers_each_log_every_entry(tmp_path):
    out, run = _run(tmp_path, POOL)
    assert run["status"] == "finished", out.stderr
    assert sorted(m["step"] for m in run["metrics"]) == list(range(40))
    assert run["client_drops"]["count"] == 0


DATALOADER = """
import torch
from torch.utils.data import DataLoader, Dataset
from greentrain import client

class Items(Dataset):
    def __len__(self):
        return 16
    def __getitem__(self, i):
        client.log(step=i, item=float(i))
        return torch.tensor(i)

with client.window("epoch"):
    for b, batch in enumerate(DataLoader(Items(), batch_size=4, num_workers=2)):
        client.log(step=100 + b, batch_sum=float(batch.sum()))
"""


def test_a_dataloaders_workers_log_into_the_epoch_window(tmp_path):
    pytest.importorskip("torch")
    out, run = _run(tmp_path, DATALOADER)
    assert run["status"] == "finished", out.stderr
    items = sorted(m["item"] for m in run["metrics"] if "item" in m)
    assert items == [float(i) for i in range(16)]
    assert len([m for m in run["metrics"] if "batch_sum" in m]) == 4
    assert {m["window"] for m in run["metrics"]} == {"epoch"}


SIGNAL_HANDLER_LOGS = """
import signal
from greentrain import client

fired = 0
def on_alarm(signum, frame):
    global fired
    fired += 1
    client.log(step=fired, alarm=1.0)

signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
for i in range(20000):
    client.log(step=i, main=1.0)
signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
print("fired", fired)
"""


def test_a_signal_handler_that_logs_in_the_middle_of_a_log_call_never_deadlocks(tmp_path):
    out, run = _run(tmp_path, SIGNAL_HANDLER_LOGS, timeout_s=180)
    assert run["status"] == "finished", out.stderr
    fired = int(out.stdout.split("fired")[1])
    assert len([m for m in run["metrics"] if "main" in m]) == 20000
    assert len([m for m in run["metrics"] if "alarm" in m]) == fired > 0

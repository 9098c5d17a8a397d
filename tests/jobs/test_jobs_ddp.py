"""``greentrain train`` under torchrun: two gloo processes on CPU train and are recorded once."""

from __future__ import annotations

import os
import subprocess
import sys

from greentrain.store import Store


def test_torchrun_two_gloo_ranks_train_and_log_once(tmp_path):
    store = str(tmp_path / "s.db")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GREENTRAIN_RUN", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "greentrain", "train", "--epochs", "2", "--batch-size", "16",
        "--max-steps-per-epoch", "1", "--limit-eval-batches", "1", "--eval-batch-size", "16",
        "--drop", "0.8", "--device", "cpu", "--meter", "fake", "--store", store,
        "--no-progress", "--out", str(tmp_path / "ckpt"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = Store(store).list_runs()
    assert len(runs) == 1  # rank 1 does not create a second record
    run = Store(store).get_run(runs[0]["id"])
    assert run["status"] == "finished"
    assert run["config"]["world_size"] == 2
    epochs = [m["epoch"] for m in run["metrics"] if "epoch" in m]
    assert epochs == [1, 2]  # each epoch logged once, by rank 0
    assert proc.stdout.count("train: best_test_acc") == 1
    assert os.path.exists(tmp_path / "ckpt" / "last.pt")

"""The classification job on the offline digits data: learning, records, exact resume."""

from __future__ import annotations

import pytest
import torch

from greentrain.jobs.config import TrainConfig
from greentrain.run import RunOptions
from greentrain.store import Store

TINY = dict(
    dataset="digits",
    batch_size=32,
    eval_batch_size=64,
    max_steps_per_epoch=3,
    limit_eval_batches=1,
    progress=False,
    device="cpu",
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("drop", [0.0, 0.8], ids=["dense", "ssprop"])
def test_digits_training_reduces_loss_and_records_per_epoch_metrics(tmp_path, drop):
    from greentrain.studies.launch import launch

    cfg = TrainConfig(epochs=2, drop=drop, schedule="constant", **TINY)
    outcome = launch(cfg, RunOptions(store=str(tmp_path / "s.db"), meters=["fake"]))
    history = outcome.result.history
    assert history[1]["train_loss"] < history[0]["train_loss"]

    run = Store(str(tmp_path / "s.db")).get_run(outcome.run_id)
    assert run["status"] == "finished"
    assert run["config"]["drop_rate"] == drop and run["config"]["job"] == "classify"
    per_epoch = [m for m in run["metrics"] if m.get("epoch") is not None]
    assert [m["epoch"] for m in per_epoch] == [1, 2]
    for m in per_epoch:
        assert 0.0 <= m["test_acc"] <= 1.0
        assert m["drop_rate"] == pytest.approx(drop)
        assert m["backward_flops_per_iter"] > 0
        assert m["epoch_time_s"] > 0
    if drop:  # ssProp at 0.8 needs far fewer backward FLOPs than dense
        dense = outcome.result.model  # sanity: the job really converted the convolutions
        assert any(type(m).__name__ == "SparseConv2d" for m in dense.modules())
    final = [m for m in run["metrics"] if "final_test_acc" in m]
    assert final and final[0]["best_test_acc"] >= final[0]["final_test_acc"]
    assert len([w for w in run["windows"] if w["name"] == "epoch"]) == 2


def test_resume_after_epoch_one_matches_uninterrupted_two_epoch_run(tmp_path):
    from greentrain.jobs.classify import train_classifier

    common = dict(TINY, epochs=2, drop=0.8, schedule="bar", dropout=0.1, deterministic=True)
    whole = train_classifier(TrainConfig(out=str(tmp_path / "a"), **common))
    first = train_classifier(TrainConfig(out=str(tmp_path / "b"), **common), stop_after_epoch=1)
    assert first.epochs_done == 1
    second = train_classifier(TrainConfig(out=str(tmp_path / "b"), resume=True, **common))
    assert second.epochs_done == 2 and len(second.history) == 2

    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["scheduler"]["last_step"] == b["scheduler"]["last_step"] == 6
    assert whole.history[1]["train_loss"] == second.history[1]["train_loss"]


def test_dropout_flag_puts_dropout_after_every_convolution():
    from greentrain.jobs.classify import add_dropout
    from greentrain.jobs.models import build_model

    model = add_dropout(build_model("resnet18", num_classes=10, in_channels=1), 0.3)
    wrapped = [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Sequential) and len(m) == 2 and isinstance(m[0], torch.nn.Conv2d)
    ]
    assert len(wrapped) == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert all(isinstance(m[1], torch.nn.Dropout) and m[1].p == 0.3 for m in wrapped)


def test_synthetic_cifar10_trains_offline_with_the_cifar_stem_and_records_a_run(tmp_path):
    from greentrain.studies.launch import launch

    tiny = {**TINY, "dataset": "synthetic-cifar10", "batch_size": 8, "eval_batch_size": 8}
    cfg = TrainConfig(epochs=1, drop=0.8, schedule="constant", **tiny)
    outcome = launch(cfg, RunOptions(store=str(tmp_path / "s.db"), meters=["fake"]))
    model = outcome.result.model
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)  # CIFAR stem
    run = Store(str(tmp_path / "s.db")).get_run(outcome.run_id)
    assert run["status"] == "finished" and run["config"]["dataset"] == "synthetic-cifar10"
    assert 0.0 <= outcome.result.history[0]["test_acc"] <= 1.0


def test_compile_flags_wrap_the_training_model_in_one_fullgraph_compile(monkeypatch):
    """--compile / --cuda-graphs reach torch.compile with fullgraph=True (a graph break is an
    error, never a slow path) and the mode; the real compile is tested in test_ssprop_*."""
    from greentrain.jobs.classify import train_classifier

    calls = []

    def spy(model, **kwargs):
        calls.append(kwargs)
        return model  # run eagerly: this test pins the wiring, not inductor

    monkeypatch.setattr(torch, "compile", spy)
    train_classifier(TrainConfig(epochs=1, drop=0.8, schedule="constant", compile=True, **TINY))
    assert calls == [{"fullgraph": True, "mode": "default"}]
    from greentrain.jobs.loop import compiled

    cfg = TrainConfig(cuda_graphs=True)
    with pytest.raises(Exception, match="--cuda-graphs needs a CUDA device"):
        compiled(torch.nn.Linear(2, 2), cfg, torch.device("cpu"))


def test_the_flops_plan_in_the_config_matches_each_epochs_logged_backward_flops(tmp_path):
    from greentrain.studies.launch import launch

    cfg = TrainConfig(epochs=4, drop=0.8, schedule="bar", period=2, **TINY)
    outcome = launch(cfg, RunOptions(store=str(tmp_path / "s.db"), meters=["fake"]))
    run = Store(str(tmp_path / "s.db")).get_run(outcome.run_id)
    plan = run["config"]["backward_flops_per_epoch"]
    logged = [m["backward_flops_per_iter"] for m in run["metrics"] if m.get("epoch") is not None]
    assert plan == pytest.approx(logged)
    assert plan[0] != plan[1] and plan[0] == plan[2]  # a bar schedule: dear and cheap epochs

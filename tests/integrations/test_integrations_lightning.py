"""greentrain.integrations.lightning.EnergyCallback with the real Lightning, a tiny module on
random tensors, CPU, two epochs: one window per epoch and per validation, the trainer's metrics
in each epoch's window, the epoch's energy in the trainer's own logger, rank zero only, and the
status a failed or interrupted fit leaves. Under `greentrain run`: test_integrations_readme."""

from __future__ import annotations

import csv
import json
import signal

import pytest

pytest.importorskip("lightning")
import lightning.pytorch as L  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from test_integrations_training import OFFLINE_ENV  # noqa: E402

from greentrain.integrations.lightning import EnergyCallback  # noqa: E402
from greentrain.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine(monkeypatch):
    """The libraries' own telemetry, crash reports and hub look-ups off (subprocesses too)."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


# The module and data of the tests (and, as text, of the README snippet's test).
TINY = """
import torch
import lightning.pytorch as L
from torch.utils.data import DataLoader, TensorDataset


class Tiny(L.LightningModule):
    def __init__(self, lr=0.1, fail_at_epoch=None, interrupt=False):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 2)

    def training_step(self, batch, i):
        if self.current_epoch == self.hparams.fail_at_epoch:
            if self.hparams.interrupt:
                raise KeyboardInterrupt
            raise RuntimeError("loss is nan")
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


g = torch.Generator().manual_seed(0)
data = TensorDataset(torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g))
train_loader = DataLoader(data, batch_size=8)
val_loader = DataLoader(data, batch_size=8)
"""
# Each read adds 2 J (CPU) and 1 J (GPU). An epoch's window holds its validation's, so it spans
# three reads (9 J); a validation's, one (3 J).
SCRIPT = {
    "channels": [
        {"domain": "cpu", "device": "host", "per_read_j": 2.0},
        {"domain": "gpu", "device": "gpu:0", "per_read_j": 1.0},
    ]
}
QUIET = dict(
    enable_progress_bar=False,
    enable_model_summary=False,
    enable_checkpointing=False,
    accelerator="cpu",
    log_every_n_steps=1,
)


@pytest.fixture(scope="module")
def tiny():
    namespace: dict = {}
    exec(compile(TINY, "tiny_lightning", "exec"), namespace)
    return namespace


@pytest.fixture
def fake_meter(monkeypatch):
    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(SCRIPT))


def _fit(tiny, tmp_path, callback, **hparams):
    trainer = L.Trainer(max_epochs=2, callbacks=[callback], logger=CSVLogger(tmp_path), **QUIET)
    trainer.fit(tiny["Tiny"](**hparams), tiny["train_loader"], tiny["val_loader"])
    return trainer


def _run(store):
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


def _csv_rows(trainer):
    with open(f"{trainer.logger.log_dir}/metrics.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_each_epoch_has_its_energy_beside_its_metrics_at_the_loggers_own_step(
    tiny, tmp_path, fake_meter
):
    store = tmp_path / "g.db"
    cb = EnergyCallback("tiny", store=store, meters=["fake"], sample_s=0, summary=False)
    trainer = _fit(tiny, tmp_path, cb)
    run = _run(store)
    assert run["id"] == cb.run_id and run["status"] == "finished" and run["name"] == "tiny"
    assert run["config"] == {"framework": "lightning", "module": "Tiny", "lr": 0.1,
                             "fail_at_epoch": None, "interrupt": False}  # fmt: skip
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch", "eval"]
    assert [w["info"]["index"] for w in run["windows"]] == [1, 1, 2, 2]  # epochs from 1
    rows = _csv_rows(trainer)
    val_steps = [int(r["step"]) for r in rows if r.get("val_acc")]
    assert val_steps == [3, 7]  # Lightning's own: four batches an epoch, from step 0
    epochs = [m for m in run["metrics"] if m["window"] == "epoch"]
    assert [(m["epoch"], m["step"]) for m in epochs] == [(1, 3), (2, 7)]
    assert all(m["train_loss_epoch"] > 0 for m in epochs)
    evals = [m for m in run["metrics"] if m["window"] == "eval"]  # inside their windows
    assert [(m["epoch"], m["step"]) for m in evals] == [(1, 3), (2, 7)]
    assert all(0 <= m["val_acc"] <= 1 for m in evals)
    assert not any(k.startswith("greentrain/") for m in run["metrics"] for k in m)
    # one energy value per epoch, at the same step as val_acc
    epoch_j = [(int(r["step"]), float(r["greentrain/epoch.energy_j"])) for r in rows
               if r.get("greentrain/epoch.energy_j")]  # fmt: skip
    eval_j = [(int(r["step"]), float(r["greentrain/eval.energy_j"])) for r in rows
              if r.get("greentrain/eval.energy_j")]  # fmt: skip
    assert epoch_j == [(3, 9.0), (7, 9.0)] and eval_j == [(3, 3.0), (7, 3.0)]
    kwh = [float(r["greentrain/epoch.energy_kwh"]) for r in rows
           if r.get("greentrain/epoch.energy_kwh")]  # fmt: skip
    assert kwh == pytest.approx([9.0 / 3.6e6] * 2, rel=1e-6)  # the logger keeps float32
    co2 = [float(r["greentrain/epoch.co2_g"]) for r in rows if r.get("greentrain/epoch.co2_g")]
    intensity = run["carbon"]["intensity_g_per_kwh"]
    assert co2 == pytest.approx([9.0 / 3.6e6 * intensity] * 2, rel=1e-6)


def test_a_fit_that_raises_is_recorded_failed_with_the_epochs_it_ran(tiny, tmp_path, fake_meter):
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"], sample_s=0, summary=False)
    with pytest.raises(RuntimeError, match="loss is nan"):
        _fit(tiny, tmp_path, cb, fail_at_epoch=1)
    run = _run(store)
    assert run["status"] == "failed" and cb.run.status == "failed"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch"]
    assert all(w["ended_at"] for w in run["windows"])  # the failing epoch's window closed


def test_ctrl_c_during_fit_is_recorded_interrupted(tiny, tmp_path, fake_meter):
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"], sample_s=0, summary=False)
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's graceful shutdown ends in sys.exit(1)
            _fit(tiny, tmp_path, cb, fail_at_epoch=0, interrupt=True)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT from then on
    assert _run(store)["status"] == "interrupted"


def test_only_rank_zero_records(tiny, tmp_path, fake_meter, monkeypatch):
    monkeypatch.setattr(L.Trainer, "is_global_zero", property(lambda self: False))
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"], sample_s=0, summary=False)
    trainer = _fit(tiny, tmp_path, cb)
    assert cb.run_id is None and not store.exists()
    assert trainer.state.finished

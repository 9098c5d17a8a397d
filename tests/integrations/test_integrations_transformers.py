"""greentrain.integrations.transformers.EnergyCallback with the real Hugging Face Trainer on a
tiny BERT built from its config (no download), CPU, two epochs with an evaluation each: one
window per epoch holding its evaluation's, the Trainer's logs in them, each window's energy in
state.log_history, rank zero only, and a crashed train() recorded as failed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from test_integrations_training import OFFLINE_ENV  # noqa: E402
from transformers import TrainerState  # noqa: E402

from greentrain.integrations.transformers import EnergyCallback  # noqa: E402
from greentrain.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine(monkeypatch):
    """The libraries' own telemetry, crash reports and hub look-ups off (subprocesses too)."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


# The model, data and arguments of the tests (and, as text, of the README snippet's test).
TINY = """
import sys
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 50, (n, 8), generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "attention_mask": torch.ones(8, dtype=torch.long),
                "labels": self.y[i]}


class Crashing(BertForSequenceClassification):
    calls = 0

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kw):
        Crashing.calls += 1
        if Crashing.calls == 4:  # two steps, an evaluation, then the second epoch's first
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def compute_metrics(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16, num_labels=2)
model = BertForSequenceClassification(config)
train_ds, eval_ds = Tokens(16, 0), Tokens(8, 1)
args = TrainingArguments(output_dir=OUT, num_train_epochs=2, per_device_train_batch_size=8,
                         eval_strategy="epoch", logging_strategy="epoch", save_strategy="no",
                         report_to="none", use_cpu=True, disable_tqdm=True)
"""
SCRIPT = {
    "channels": [
        {"domain": "cpu", "device": "host", "per_read_j": 2.0},
        {"domain": "gpu", "device": "gpu:0", "per_read_j": 1.0},
    ]
}


def tiny_source(out: object) -> str:
    return f"OUT = {str(out)!r}\n" + TINY


@pytest.fixture
def fake_meter(monkeypatch):
    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(SCRIPT))


def _run(store):
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


def test_each_epoch_has_its_energy_in_log_history_and_the_logs_beside_it(tmp_path, fake_meter):
    ns: dict = {}
    exec(compile(tiny_source(tmp_path / "out"), "tiny_hf", "exec"), ns)
    store = tmp_path / "g.db"
    cb = EnergyCallback("bert", store=store, meters=["fake"], sample_s=0, summary=False)
    trainer = ns["Trainer"](model=ns["model"], args=ns["args"], train_dataset=ns["train_ds"],
                            eval_dataset=ns["eval_ds"], compute_metrics=ns["compute_metrics"],
                            callbacks=[cb])  # fmt: skip
    trainer.train()
    run = _run(store)
    assert run["id"] == cb.run_id and run["status"] == "finished"
    assert run["config"]["framework"] == "transformers" and run["config"]["model_type"] == "bert"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch", "eval"]
    evals = [m for m in run["metrics"] if "eval_accuracy" in m]
    assert [(m["window"], m["step"], m["epoch"]) for m in evals] == [("eval", 2, 1.0),
                                                                     ("eval", 4, 2.0)]  # fmt: skip
    losses = [m for m in run["metrics"] if "loss" in m]
    assert [m["window"] for m in losses] == ["epoch", "epoch"]  # logged at the epoch's end
    history = trainer.state.log_history
    epochs = [h for h in history if "energy/epoch_j" in h]
    # begin, the evaluation's two reads, end: three reads of 3 J for an epoch, one for an eval
    got = [(h["energy/epoch_j"], h["epoch"], h["step"]) for h in epochs]
    assert got == [(9.0, 1.0, 2), (9.0, 2.0, 4)]
    assert epochs[0]["energy/epoch_kwh"] == pytest.approx(9.0 / 3.6e6)
    assert epochs[0]["energy/epoch_co2_g"] == pytest.approx(
        9.0 / 3.6e6 * run["carbon"]["intensity_g_per_kwh"]
    )
    assert [h["energy/eval_j"] for h in history if "energy/eval_j" in h] == [3.0, 3.0]


def test_only_the_main_process_records(tmp_path, fake_meter):
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"])
    state = TrainerState(is_world_process_zero=False)
    cb.on_train_begin(None, state, None, model=None)
    cb.on_epoch_begin(None, state, None)
    cb.on_log(None, state, None, logs={"loss": 1.0})
    cb.on_train_end(None, state, None)
    assert cb.run_id is None and not store.exists()


def test_a_train_that_crashes_is_recorded_failed_when_the_process_ends(tmp_path, fake_meter):
    """The Trainer has no hook for an exception: the process's exit finalizes the run."""
    store = tmp_path / "g.db"
    script = tiny_source(tmp_path / "out") + (
        "from greentrain.integrations.transformers import EnergyCallback\n"
        "model = Crashing(config)\n"
        f"cb = EnergyCallback(store={str(store)!r}, meters=['fake'], sample_s=0)\n"
        "Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,\n"
        "        callbacks=[cb]).train()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240)  # fmt: skip
    assert out.returncode == 1 and "out of memory (simulated)" in out.stderr
    run = _run(store)
    assert run["status"] == "failed"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch"]  # epoch 2 crashed
    assert all(w["ended_at"] for w in run["windows"])

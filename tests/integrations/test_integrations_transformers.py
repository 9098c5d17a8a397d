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
from transformers import TrainerCallback, TrainerState  # noqa: E402

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


class Seen(TrainerCallback):
    """What an integration (MLflow's, W&B's) receives in ``on_log``: (step, epoch, logs)."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kw):
        self.logs.append((state.global_step, state.epoch, dict(logs or {})))


def tiny_source(out: object) -> str:
    return f"OUT = {str(out)!r}\n" + TINY


@pytest.fixture
def fake_meter(monkeypatch):
    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(SCRIPT))


def _run(store):
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


def test_each_epoch_energy_is_in_the_logs_the_integrations_get_at_the_trainers_step(
    tmp_path, fake_meter
):
    ns: dict = {}
    exec(compile(tiny_source(tmp_path / "out"), "tiny_hf", "exec"), ns)
    store = tmp_path / "g.db"
    cb = EnergyCallback("bert", store=store, meters=["fake"], sample_s=0, summary=False)
    seen = Seen()  # an integration: given before the callback, as report_to's are
    trainer = ns["Trainer"](model=ns["model"], args=ns["args"], train_dataset=ns["train_ds"],
                            eval_dataset=ns["eval_ds"], compute_metrics=ns["compute_metrics"],
                            callbacks=[seen, cb])  # fmt: skip
    trainer.train()
    run = _run(store)
    assert run["id"] == cb.run_id and run["status"] == "finished"
    assert run["config"]["framework"] == "transformers" and run["config"]["model_type"] == "bert"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch", "eval"]
    assert [w["info"]["index"] for w in run["windows"]] == [1, 1, 2, 2]  # epochs from 1
    evals = [m for m in run["metrics"] if "eval_accuracy" in m]
    assert [(m["window"], m["step"], m["epoch"]) for m in evals] == [("eval", 2, 1.0),
                                                                     ("eval", 4, 2.0)]  # fmt: skip
    losses = [m for m in run["metrics"] if "loss" in m]
    assert [m["window"] for m in losses] == ["epoch", "epoch"]  # logged at the epoch's end
    assert not any(k.startswith("greentrain/") for m in run["metrics"] for k in m)
    # the integration got one epoch energy per epoch, in the same logs as the loss, its step
    epoch_kwh = [(s, e, logs["greentrain/epoch.energy_kwh"]) for s, e, logs in seen.logs
                 if "greentrain/epoch.energy_kwh" in logs]  # fmt: skip
    assert [(s, e) for s, e, _ in epoch_kwh] == [(2, 1.0), (4, 2.0)]
    assert all(kwh == pytest.approx(3.0 / 3.6e6) for _, _, kwh in epoch_kwh)  # one read: 3 J
    eval_j = [logs["greentrain/eval.energy_j"] for _, _, logs in seen.logs
              if "greentrain/eval.energy_j" in logs]  # fmt: skip
    assert eval_j == [3.0, 3.0]
    with_loss = [logs for _, _, logs in seen.logs if "loss" in logs]
    assert all("greentrain/epoch.energy_j" in logs for logs in with_loss)
    # log_history (trainer_state.json) has them too, the last epoch's included
    history = trainer.state.log_history
    got = [(h["greentrain/epoch.energy_j"], h["epoch"], h["step"]) for h in history
           if "greentrain/epoch.energy_j" in h]  # fmt: skip
    assert got == [(3.0, 1.0, 2), (3.0, 2.0, 4)]
    intensity = run["carbon"]["intensity_g_per_kwh"]
    assert history[0]["greentrain/epoch.co2_g"] == pytest.approx(3.0 / 3.6e6 * intensity)
    assert history[0]["greentrain/epoch.cpu_energy_j"] == 2.0


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


def test_an_epoch_the_trainer_logs_nothing_after_still_has_its_energy_at_its_last_step(
    tmp_path, fake_meter
):
    """Logging every 2 steps, 2 steps an epoch, no evaluation: the Trainer has just logged
    when the epoch ends, so no log follows it; the epoch's energy still lands in log_history
    at the epoch's last step, and the epochs' windows stay apart."""
    ns: dict = {}
    exec(compile(tiny_source(tmp_path / "out"), "tiny_hf", "exec"), ns)
    args = ns["args"]
    args.eval_strategy, args.logging_strategy, args.logging_steps = "no", "steps", 2
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"], sample_s=0, summary=False)
    trainer = ns["Trainer"](model=ns["model"], args=args, train_dataset=ns["train_ds"],
                            callbacks=[cb])  # fmt: skip
    trainer.train()
    steps = [h["step"] for h in trainer.state.log_history if "greentrain/epoch.energy_j" in h]
    assert steps == [2, 4]
    run = _run(store)
    assert [(w["name"], w["info"]["index"]) for w in run["windows"]] == [("epoch", 1),
                                                                        ("epoch", 2)]  # fmt: skip

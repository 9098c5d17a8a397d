"""The callbacks' shared core (greentrain.integrations.training), without any framework: which
run it records to, each window's energy back in the training process (or None, never zeros,
when another process meters), the status it leaves, and that bad options fail before training."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from greentrain import client
from greentrain.errors import ConfigError
from greentrain.integrations.training import TrainingRun, window_energy
from greentrain.run import track
from greentrain.store import Store

OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_MODE": "offline",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine(monkeypatch):
    """The libraries' own telemetry, crash reports and hub look-ups off (subprocesses too)."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


# Each read adds 2 J on the CPU and 1 J on the GPU: a window (begin and end, one read apart)
# is 3 J.
SCRIPT = {
    "channels": [
        {"domain": "cpu", "device": "host", "per_read_j": 2.0},
        {"domain": "gpu", "device": "gpu:0", "per_read_j": 1.0},
    ]
}


@pytest.fixture
def fake_meter(monkeypatch):
    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(SCRIPT))


def _runs(path):
    with Store(path, read_only=True) as st:
        return st.list_runs()


def test_own_run_gives_each_window_energy_and_co2_and_records_metrics(tmp_path, fake_meter):
    store = tmp_path / "g.db"
    tr = TrainingRun("t", store=store, meters=["fake"], carbon_intensity=400.0, pue=1.5,
                     sample_s=0, summary=False)  # fmt: skip
    tr.start(config={"lr": 0.1})
    assert tr.mode == "own" and tr.run_id
    energies = []
    for epoch in range(2):
        tr.begin("epoch", index=epoch)
        tr.log(epoch, {"val_acc": 0.5 + epoch / 10})
        energies.append(tr.end("epoch"))
    tr.finish()
    first = energies[0]
    assert (first.name, first.index, first.energy_j) == ("epoch", 0, 3.0)
    assert first.energy_kwh == pytest.approx(3.0 / 3.6e6)
    assert first.co2_g == pytest.approx(3.0 / 3.6e6 * 400.0 * 1.5)
    assert first.metrics() == {
        "energy/epoch_j": 3.0,
        "energy/epoch_kwh": pytest.approx(3.0 / 3.6e6),
        "energy/epoch_co2_g": pytest.approx(3.0 / 3.6e6 * 600.0),
    }
    (run,) = _runs(store)
    assert run["id"] == tr.run_id and run["status"] == "finished" == tr.status
    assert run["config"] == {"lr": 0.1}
    assert [w["name"] for w in run["windows"]] == ["epoch", "epoch"]
    assert [(m["window"], m["val_acc"]) for m in run["metrics"]] == [("epoch", 0.5), ("epoch", 0.6)]


def test_inside_an_open_run_it_feeds_that_run_and_logs_no_energy(tmp_path, fake_meter, caplog):
    store = tmp_path / "g.db"
    with track("outer", store=store, meters=["fake"], sample_s=0) as outer:
        tr = TrainingRun(store=store, meters=["fake"])
        tr.start()
        assert tr.mode == "outer" and tr.run_id == outer.id
        tr.begin("epoch")
        tr.log(3, {"val_acc": 0.7})
        assert tr.end("epoch") is None  # not known in this process: nothing, not zeros
        tr.finish()
    (run,) = _runs(store)  # no second run was opened
    assert run["windows"][0]["name"] == "epoch" and run["metrics"][0]["val_acc"] == 0.7
    # a warning through logging: shown on stderr in a script, where no handler is configured
    assert any(
        "not known here" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records
    )


def test_off_rank_zero_it_records_nothing(tmp_path, fake_meter):
    store = tmp_path / "g.db"
    tr = TrainingRun(store=store, meters=["fake"])
    tr.start(enabled=False)
    tr.begin("epoch")
    tr.log(0, {"loss": 1.0})
    assert tr.end("epoch") is None
    tr.finish()
    assert not store.exists() or _runs(store) == []


@pytest.mark.parametrize(
    "error, status", [(RuntimeError("nan loss"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_training_that_raises_leaves_its_run_marked(tmp_path, fake_meter, error, status):
    store = tmp_path / "g.db"
    tr = TrainingRun(store=store, meters=["fake"], sample_s=0, summary=False)
    tr.start()
    tr.begin("epoch")
    tr.finish(error)  # the open window is closed, the run finalized
    (run,) = _runs(store)
    assert run["status"] == status == tr.status
    assert run["windows"][0]["ended_at"] is not None
    assert not client.active()  # the run is no longer bound


def test_bad_run_options_fail_when_the_callback_is_made(tmp_path):
    with pytest.raises(ConfigError, match="--pue"):
        TrainingRun(store=tmp_path / "g.db", pue=0.5)
    with pytest.raises(TypeError, match="unknown run option"):
        TrainingRun(store=tmp_path / "g.db", colour="green")


def test_a_window_without_any_measured_domain_has_no_energy_not_zero():
    event = {"name": "epoch", "info": {"index": 2}, "energy": {"gpu": {"energy_j": None}}}
    energy = window_energy(event, 475.0, 1.0)
    assert energy.energy_j is None and energy.co2_g is None and energy.metrics() == {}


def test_importing_greentrain_and_its_cli_loads_none_of_the_integration_libraries():
    code = (
        "import sys, greentrain, greentrain.cli, greentrain.integrations.trackers, "
        "greentrain.integrations.training\n"
        "print(','.join(m for m in ('lightning', 'pytorch_lightning', 'transformers', 'mlflow',"
        " 'wandb') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

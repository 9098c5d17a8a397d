"""The callbacks' shared core (greentrain.integrations.training), without any framework: which
run it records to, each window's energy back in the training process in every mode (from the
run in-process, from the wrapper's answer under `greentrain run`, late answers at their own
step, never zeros), the status it leaves, and that bad options fail before training."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

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


def test_own_run_gives_each_window_energy_and_co2_and_records_metrics(tmp_path, fake_meter,
                                                                     capsys):  # fmt: skip
    store = tmp_path / "g.db"
    tr = TrainingRun("t", store=store, meters=["fake"], carbon_intensity=400.0, pue=1.5,
                     sample_s=0, summary=False)  # fmt: skip
    tr.start(config={"lr": 0.1})
    assert tr.mode == "own" and tr.run_id
    # callback-only mode says what it does: one line naming the run and its store
    assert f"recording run {tr.run_id} in {store}" in capsys.readouterr().err
    energies = []
    for epoch in (1, 2):
        tr.begin("epoch", index=epoch)
        tr.log(epoch * 10, {"val_acc": 0.5 + epoch / 10})
        energies += tr.end("epoch", step=epoch * 10)
    tr.finish()
    first = energies[0]
    assert (first.name, first.index, first.step, first.energy_j) == ("epoch", 1, 10, 3.0)
    assert first.energy_kwh == pytest.approx(3.0 / 3.6e6)
    assert first.co2_g == pytest.approx(3.0 / 3.6e6 * 400.0 * 1.5)
    metrics = first.metrics()
    assert metrics["greentrain/epoch.energy_j"] == 3.0
    assert metrics["greentrain/epoch.energy_kwh"] == pytest.approx(3.0 / 3.6e6)
    assert metrics["greentrain/epoch.co2_g"] == pytest.approx(3.0 / 3.6e6 * 600.0)
    assert metrics["greentrain/epoch.cpu_energy_j"] == 2.0
    assert first.sources == {"cpu": "fake:fake", "gpu": "fake:fake"}
    (run,) = _runs(store)
    assert run["id"] == tr.run_id and run["status"] == "finished" == tr.status
    assert run["config"] == {"lr": 0.1}
    assert [w["name"] for w in run["windows"]] == ["epoch", "epoch"]
    assert [(m["window"], m["val_acc"]) for m in run["metrics"]] == [("epoch", 0.6), ("epoch", 0.7)]


def test_inside_an_open_run_it_feeds_that_run_and_gets_the_energy_back(tmp_path, fake_meter):
    store = tmp_path / "g.db"
    with track("outer", store=store, meters=["fake"], sample_s=0) as outer:
        tr = TrainingRun(store=store, meters=["fake"])
        tr.start()
        assert tr.mode == "outer" and tr.run_id == outer.id
        tr.begin("epoch")
        tr.log(3, {"val_acc": 0.7})
        (energy,) = tr.end("epoch", step=3)
        assert (energy.index, energy.step, energy.energy_j) == (1, 3, 3.0)
        tr.finish()
    (run,) = _runs(store)  # no second run was opened
    assert run["windows"][0]["name"] == "epoch" and run["metrics"][0]["val_acc"] == 0.7


TRAIN_UNDER_RUN = """
import json, sys
from greentrain.integrations.training import TrainingRun
tr = TrainingRun()
tr.start()
got = []
for epoch in (1, 2, 3):
    tr.begin("epoch", index=epoch)
    tr.log(epoch * 4, {"val_acc": epoch / 10})
    got += [(e.name, e.index, e.step, e.energy_j, e.co2_g is not None, e.sources)
            for e in tr.end("epoch", step=epoch * 4)]
tr.finish()
json.dump(got, open(sys.argv[1], "w"))
"""


@pytest.mark.slow  # starts the wrapper and the job's process
def test_under_greentrain_run_the_wrapper_answers_each_window_with_its_energy(
    tmp_path, fake_meter, monkeypatch
):
    from greentrain.cli import main

    script, out, store = tmp_path / "train.py", tmp_path / "got.json", tmp_path / "g.db"
    script.write_text(TRAIN_UNDER_RUN, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--store", str(store), "--meter", "fake", "--sample-s", "0", "--",
            sys.executable, str(script), str(out)]  # fmt: skip
    assert main(argv) == 0
    got = json.loads(out.read_text())
    sources = {"cpu": "fake:fake", "gpu": "fake:fake"}
    assert got == [["epoch", i, i * 4, 3.0, True, sources] for i in (1, 2, 3)]
    (run,) = _runs(store)
    assert [w["energy"]["cpu"]["energy_j"] for w in run["windows"]] == [2.0, 2.0, 2.0]


class SilentWrapper:
    """A channel that takes the client's lines and answers only when told to."""

    def __init__(self, folder):
        self.path = str(folder / "ch")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(8)
        self.conn = None
        self.buf = b""

    def window_ends(self, n, deadline_s=60.0):
        """The keys of the first ``n`` window ends received."""
        if self.conn is None:
            self.server.settimeout(deadline_s)
            self.conn, _ = self.server.accept()
            self.conn.settimeout(deadline_s)
        while self.buf.count(b'"k":"we"') < n:
            self.buf += self.conn.recv(1 << 16)
        ends = [json.loads(x) for x in self.buf.splitlines() if b'"k":"we"' in x]
        return [e["id"] for e in ends[:n]]

    def answer(self, key, energy_j):
        answer = {"k": "wa", "id": key, "name": "epoch", "index": None, "duration_s": 1.0,
                  "energy": {"gpu": {"energy_j": energy_j, "source": "nvml:counter",
                                     "estimated": False}},
                  "carbon": {"intensity_g_per_kwh": None, "pue": 1.0}}  # fmt: skip
        self.conn.sendall(json.dumps(answer).encode() + b"\n")


def test_a_late_answer_is_given_at_the_next_end_with_its_own_step_and_waited_for_once(
    tmp_path, monkeypatch, caplog
):
    wrapper = SilentWrapper(tmp_path)
    monkeypatch.setenv("GREENTRAIN_RUN", "r1")
    monkeypatch.setenv("GREENTRAIN_CHANNEL", wrapper.path)
    tr = TrainingRun(wait_s=0.3)
    tr.start()
    assert tr.mode == "outer"
    tr.begin("epoch")
    assert tr.end("epoch", step=10) == []  # no answer within 0.3 s: training goes on
    assert sum("did not come" in r.getMessage() for r in caplog.records) == 1
    (first,) = wrapper.window_ends(1)
    wrapper.answer(first, 5.0)  # the answer comes late
    tr.begin("epoch")
    got = tr.end("epoch", step=20)  # the second window's is not waited for
    assert [(e.step, e.energy_j, e.co2_g) for e in got] == [(10, 5.0, None)]
    second = wrapper.window_ends(2)[1]
    wrapper.answer(second, 7.0)
    deadline = time.monotonic() + 60
    later = []
    while not later and time.monotonic() < deadline:
        later = tr.collect()
    assert [(e.step, e.energy_j) for e in later] == [(20, 7.0)]
    tr.finish()


def test_off_rank_zero_it_records_nothing(tmp_path, fake_meter):
    store = tmp_path / "g.db"
    tr = TrainingRun(store=store, meters=["fake"])
    tr.start(enabled=False)
    tr.begin("epoch")
    tr.log(0, {"loss": 1.0})
    assert tr.end("epoch") == []
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
    answer = {"name": "epoch", "index": 2, "energy": {"gpu": {"energy_j": None}},
              "carbon": {"intensity_g_per_kwh": 475.0, "pue": 1.0}, "duration_s": 3.0}  # fmt: skip
    energy = window_energy(answer)
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


@pytest.mark.slow  # starts the wrapper and the job's process
def test_answers_a_script_never_reads_hold_nothing_up_and_later_ones_still_come(
    tmp_path, fake_meter, monkeypatch
):
    """3000 windows whose answers nobody asks for (about 1.5 MB, more than a socket buffer
    holds), then one whose answer is asked for: it comes, and every window is recorded."""
    from greentrain.cli import main

    script, out = tmp_path / "windows.py", tmp_path / "last.json"
    script.write_text(
        "import json, sys\n"
        "from greentrain import client\n"
        "for i in range(3000):\n"
        "    with client.window('step', index=i):\n"
        "        pass\n"
        "with client.window('last') as w:\n"
        "    pass\n"
        "json.dump(w.answer(timeout_s=120), open(sys.argv[1], 'w'))\n",
        encoding="utf-8",
    )
    store = tmp_path / "g.db"
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--store", str(store), "--meter", "fake", "--sample-s", "0", "--",
            sys.executable, str(script), str(out)]  # fmt: skip
    assert main(argv) == 0
    last = json.loads(out.read_text())
    assert last["name"] == "last" and last["energy"]["cpu"]["energy_j"] == 2.0
    (run,) = _runs(store)
    assert len(run["windows"]) == 3001 and all(w["ended_at"] for w in run["windows"])

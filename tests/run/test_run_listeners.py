"""Listeners follow a run as it goes: config, each closed window with its energy and metrics,
and the final record, in order, from their own thread; one that raises stops alone."""

from __future__ import annotations

import sys
import threading

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command, track

PY = sys.executable
CHANNELS = {"channels": [{"domain": "cpu", "device": "host", "per_read_j": 2.0}]}


class Recording:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def on_config(self, event):
        self.events.append(("config", event))

    def on_window(self, event):
        self.events.append(("window", event))

    def on_end(self, event):
        self.events.append(("end", event))


class Broken:
    def on_window(self, event):
        raise RuntimeError("tracker down")


def test_a_listener_sees_config_each_window_with_energy_and_metrics_then_the_end(tmp_path):
    seen = Recording()
    with track("l", store=tmp_path / "g.db", meters=[], meter_objects=[FakeMeter(CHANNELS)],
               sample_s=0, listeners=[seen]) as run:  # fmt: skip
        client.config(epochs=2)
        for epoch in range(2):
            with client.window("epoch", index=epoch):
                client.log(step=epoch, test_acc=0.5 + epoch / 10)
    kinds = [k for k, _ in seen.events]
    assert kinds == ["config", "window", "window", "end"]
    first = seen.events[1][1]
    assert first["run_id"] == run.id and first["name"] == "epoch" and first["index"] == 0
    assert first["energy"]["cpu"]["energy_j"] == 2.0  # window begin/end: one read apart
    assert [m["metrics"]["test_acc"] for m in first["metrics"]] == [0.5]
    end = seen.events[-1][1]
    assert end["status"] == "finished" and end["record"]["id"] == run.id


def test_a_listener_that_raises_stops_alone_and_the_run_is_unharmed(tmp_path, caplog):
    seen = Recording()
    job = (
        "from greentrain import client\n"
        "for e in range(2):\n"
        "    with client.window('epoch'):\n"
        "        client.log(step=e, loss=1.0)\n"
    )
    result = run_command([PY, "-c", job], store=tmp_path / "g.db",
                         meter_objects=[FakeMeter(CHANNELS)], listeners=[Broken(), seen],
                         summary=False)  # fmt: skip
    assert result.exit_code == 0 and result.status == "finished"
    assert [k for k, _ in seen.events].count("window") == 2
    warned = [r.getMessage() for r in caplog.records if r.name == "greentrain.run"]
    assert "greentrain: Broken stopped following the run (RuntimeError: tracker down)" in warned


def test_what_a_slow_listener_adds_after_the_job_ended_still_lands_with_the_run(
    tmp_path, monkeypatch
):
    """The forecaster is held until the record's end has begun (the moment the recorder asks
    the listeners to catch up); every forecast it then makes is stored with the run."""
    from greentrain.run import forecasting, listeners
    from greentrain.store import Store

    end_began = threading.Event()
    real_drain, real_on_window = listeners.Fanout.drain, forecasting.ForecastListener.on_window

    def drain(self, timeout_s):
        end_began.set()
        return real_drain(self, timeout_s)

    def held_on_window(self, event):
        assert end_began.wait(60), "the record's end never waited for its listeners"
        return real_on_window(self, event)

    monkeypatch.setattr(listeners.Fanout, "drain", drain)
    monkeypatch.setattr(forecasting.ForecastListener, "on_window", held_on_window)
    with track("slow", store=tmp_path / "g.db", meters=[], meter_objects=[FakeMeter(CHANNELS)],
               sample_s=0, epochs=3) as run:  # fmt: skip
        for epoch in range(3):
            with client.window("epoch", index=epoch):
                client.log(step=epoch, loss=1.0)
    with Store(tmp_path / "g.db") as st:
        events = [e for e in st.get_run(run.id)["events"] if e["event"] == "forecast"]
    assert [e["epochs_done"] for e in events] == [1, 2, 3]

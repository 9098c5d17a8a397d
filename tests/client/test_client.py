"""The client: a no-op outside a run, rank 0 only under DDP, JSON datagrams to the harness."""

from __future__ import annotations

import json
import socket

import pytest

from greentrain import client


@pytest.fixture
def channel(tmp_path, monkeypatch):
    """A listening socket standing in for the harness; yields a function returning messages."""
    path = str(tmp_path / "ch")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    server.settimeout(0.2)
    monkeypatch.setenv("GREENTRAIN_RUN", "run123")
    monkeypatch.setenv("GREENTRAIN_CHANNEL", path)
    conns = []

    def messages():
        try:
            while True:
                conns.append(server.accept()[0])
        except TimeoutError:
            pass
        out = []
        for conn in conns:
            conn.settimeout(0.2)
            data = b""
            try:
                while chunk := conn.recv(65536):
                    data += chunk
            except TimeoutError:
                pass
            out.extend(json.loads(line) for line in data.splitlines() if line)
        return out

    yield messages
    for conn in conns:
        conn.close()
    server.close()


def test_client_is_a_silent_noop_outside_a_run(capsys):
    assert not client.active()
    assert client.run_id() is None
    client.config(model="r18")
    client.log(step=1, loss=0.5)
    with client.window("epoch", epoch=0):
        client.log(loss=0.4)
    assert capsys.readouterr() == ("", "")


def test_client_sends_config_log_and_windows_as_json_lines(channel):
    assert client.active() and client.run_id() == "run123"
    client.config(model="r18", drop_rate=0.8)
    with client.window("epoch", epoch=3):
        client.log(step=7, train_loss=0.25)
    kinds = [m["k"] for m in channel()]
    assert kinds == ["config", "wb", "log", "we"]


def test_log_inside_window_names_the_window_and_step(channel):
    with client.window("eval"):
        client.log(step=2, test_acc=0.9)
    log = [m for m in channel() if m["k"] == "log"][0]
    assert (log["step"], log["w"], log["m"]) == (2, "eval", {"test_acc": 0.9})


@pytest.mark.parametrize("rank_var", ["RANK", "LOCAL_RANK"])
def test_only_rank_zero_reports_under_ddp(channel, monkeypatch, rank_var):
    monkeypatch.setenv(rank_var, "1")
    assert not client.active()
    client.log(step=1, loss=1.0)
    assert channel() == []
    monkeypatch.setenv("GREENTRAIN_LOG_ALL_RANKS", "1")
    client.log(step=1, loss=1.0)
    (msg,) = channel()
    assert msg["m"] == {"loss": 1.0, "rank": 1}


def test_numpy_and_tensor_values_become_plain_numbers(channel):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    client.log(
        step=np.int64(3),
        a=np.float32(0.5),
        b=torch.tensor(2.0),
        c=float("nan"),
        d=[np.float64(1.5)],
    )
    (msg,) = channel()
    assert msg["step"] == 3
    assert msg["m"] == {"a": 0.5, "b": 2.0, "c": None, "d": [1.5]}


def test_unreachable_harness_warns_once_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GREENTRAIN_RUN", "gone")
    monkeypatch.setenv("GREENTRAIN_CHANNEL", str(tmp_path / "no-socket"))
    client.log(step=1, loss=1.0)
    client.log(step=2, loss=1.0)
    assert caplog.text.count("cannot reach") == 1

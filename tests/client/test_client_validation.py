"""Each logged value is checked alone, the same way inside and outside a run: one the record
cannot store is left out with one warning naming it, its batch-mates land, nothing raises, and
the run's record counts what was left out."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from greentrain import client
from greentrain.client import values
from greentrain.meters.fake import FakeMeter
from greentrain.run import track
from greentrain.store import Store

PY = sys.executable


def _cycle():
    d = {"a": 1}
    d["self"] = d
    return d


def _deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


BAD = {
    "int_over_64_bits": 2**63,
    "int_10_pow_5000": 10**5000,
    "cycle": _cycle(),
    "deep_5000": _deep(5000),
    "two_mib": "x" * (2 << 20),
}


@pytest.mark.parametrize("name", list(BAD))
def test_an_unstorable_value_is_left_out_alone_with_one_warning_outside_a_run(name, caplog):
    caplog.set_level(logging.WARNING, "greentrain.client")
    client.log(step=1, ok=1.0, **{name: BAD[name]})
    client.log(step=2, ok=2.0, **{name: BAD[name]})
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and repr(name) in warnings[0] and "left out" in warnings[0]


@pytest.mark.parametrize("name", list(BAD))
def test_an_unstorable_value_is_left_out_alone_inside_track_and_counted(tmp_path, name, caplog):
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        client.log(step=1, ok=1.0, **{name: BAD[name]})
        client.config(model="r18", **{name: BAD[name]})
    rec = Store(tmp_path / "g.db").get_run(run.id)
    [entry] = rec["metrics"]
    assert entry["ok"] == 1.0 and name not in entry
    assert rec["config"] == {"model": "r18"}
    assert rec["client_drops"] == {"count": 2, "reasons": {"unstorable value": 2}}
    assert repr(name) in caplog.text


def test_one_step_beyond_64_bits_among_200_entries_loses_only_its_own(tmp_path, caplog):
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        for i in range(200):
            client.log(step=2**63 if i == 100 else i, loss=float(i))
    rec = Store(tmp_path / "g.db").get_run(run.id)
    assert [m["step"] for m in rec["metrics"]] == [i for i in range(200) if i != 100]
    assert rec["client_drops"]["count"] == 1
    assert "step" in caplog.text and "64 bits" in caplog.text


def test_unstorable_values_under_greentrain_run_are_left_out_and_counted_in_show_json(tmp_path):
    job = (
        "from greentrain import client\n"
        "d = {}; d['d'] = d\n"
        "client.log(step=0, big=10**5000, cyc=d, small=1.0)\n"
        "for i in range(1, 4):\n"
        "    client.log(step=i, loss=float(i))\n"
    )
    store = str(tmp_path / "g.db")
    argv = [PY, "-m", "greentrain", "run", "--store", store, "--meter", "fake", "--", PY, "-c", job]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'big' was left out" in out.stderr and "'cyc' was left out" in out.stderr
    run_id = Store(store).list_runs()[0]["id"]
    argv = [PY, "-m", "greentrain", "show", run_id, "--store", store, "--json"]
    shown = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    rec = json.loads(shown.stdout)
    assert [m["step"] for m in rec["metrics"]] == [0, 1, 2, 3] and rec["metrics"][0]["small"] == 1
    assert rec["client_drops"] == {"count": 2, "reasons": {"unstorable value": 2}}
    [event] = [e for e in rec["events"] if e["event"] == "client entries dropped"]
    assert event["count"] == 2


def test_every_value_is_json_encoded_exactly_once_per_log_call(monkeypatch, tmp_path):
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "ch"))
    server.listen(4)
    monkeypatch.setenv("GREENTRAIN_RUN", "r1")
    monkeypatch.setenv("GREENTRAIN_CHANNEL", str(tmp_path / "ch"))
    calls = []
    encoder = values._encoder

    class Counting:
        def encode(self, value):
            calls.append(value)
            return encoder.encode(value)

    monkeypatch.setattr(values, "_encoder", Counting())
    client.log(step=3, loss=0.25, hist=[1, 2, 3])
    conn, _ = server.accept()
    conn.settimeout(30)
    line = b""
    while not line.endswith(b"\n"):
        line += conn.recv(65536)
    message = json.loads(line)
    assert message["m"] == {"loss": 0.25, "hist": [1, 2, 3]} and message["step"] == 3
    assert calls.count(0.25) <= 1 and calls.count([1, 2, 3]) == 1  # each value once at most
    assert not [c for c in calls if isinstance(c, dict)]  # the message is never re-encoded
    conn.close()
    server.close()

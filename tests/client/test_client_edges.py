"""The client at its edge: the same checks inside and outside a run, values too large to send
left out with a warning (later calls still arrive), the record's own field names kept apart,
and ``sys.exit`` inside ``track()`` recorded by its code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command, track
from greentrain.store import Store

PY = sys.executable


@pytest.mark.parametrize("step", ["abc", 1.5, True, [1]])
def test_a_bad_step_raises_the_same_type_error_outside_and_inside_a_run(tmp_path, step):
    with pytest.raises(TypeError, match="step"):
        client.log(step=step, loss=1.0)
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]):
        with pytest.raises(TypeError, match="step"):
            client.log(step=step, loss=1.0)


def test_integral_steps_of_any_numeric_type_are_accepted(tmp_path):
    import numpy as np
    import torch

    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        for step in (3, 4.0, np.int64(5), torch.tensor(6)):
            client.log(step=step, loss=1.0)
    steps = [m["step"] for m in Store(tmp_path / "g.db").get_run(run.id)["metrics"]]
    assert steps == [3, 4, 5, 6]


def test_a_64_mib_value_is_left_out_with_a_warning_and_later_calls_still_arrive(tmp_path):
    job = (
        "from greentrain import client\n"
        "client.log(step=0, huge='x' * (64 << 20), small=1.0)\n"
        "for i in range(1, 4):\n"
        "    client.log(step=i, loss=float(i))\n"
    )
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"), "--meter", "fake",
         "--", PY, "-c", job], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0
    assert "'huge'" in out.stderr and "left out" in out.stderr
    metrics = Store(tmp_path / "g.db").list_runs()[0]["metrics"]
    assert metrics[0] == {"step": 0, "window": None, "time_s": metrics[0]["time_s"], "small": 1.0}
    assert [m.get("loss") for m in metrics[1:]] == [1.0, 2.0, 3.0]


def test_metric_names_of_the_records_own_fields_get_a_user_prefix(tmp_path, caplog):
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        client.log(step=1, time_s=99.0, window="mine", loss=0.5)
    [entry] = Store(tmp_path / "g.db").get_run(run.id)["metrics"]
    assert entry["step"] == 1 and entry["window"] is None and entry["time_s"] < 99.0
    assert entry["user_time_s"] == 99.0 and entry["user_window"] == "mine"
    assert "stored as 'user_time_s'" in caplog.text


@pytest.mark.parametrize(("code", "status"), [(0, "finished"), (None, "finished"), (3, "failed")])
def test_sys_exit_inside_track_is_recorded_by_its_code(tmp_path, code, status):
    with (
        pytest.raises(SystemExit),
        track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run,
    ):
        sys.exit(code)
    rec = Store(tmp_path / "g.db").get_run(run.id)
    assert rec["status"] == status and rec["exit_code"] == (code or 0)


def test_a_64_mib_line_from_a_raw_client_does_not_stall_the_channel_and_is_counted(tmp_path):
    """A script writing straight to the socket (no client) cannot block later messages."""
    job = (
        "import json, os, socket\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(os.environ['GREENTRAIN_CHANNEL'])\n"
        's.sendall(b\'{"k":"log","m":{"x":"\' + b\'y\' * (70 << 20) + b\'"},"t":0}\\n\')\n'
        "s.sendall(json.dumps({'k': 'log', 'step': 1, 'm': {'ok': 1}, 't': 0}).encode() + b'\\n')\n"
    )
    result = run_command([PY, "-c", job], store=tmp_path / "g.db",
                         meter_objects=[FakeMeter()], summary=False)  # fmt: skip
    assert [m.get("ok") for m in result.record["metrics"]] == [1]
    refused = {"line over 64 MiB refused by the wrapper": 1}
    assert result.record["client_drops"] == {"count": 1, "reasons": refused}

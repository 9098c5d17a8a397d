"""The run library logs its diagnostics (loggers ``greentrain.*``, messages ``greentrain: ...``)
instead of printing them: in a plain script using ``track()``, Python's defaults show its
warnings on stderr and hide its INFO lines, and the script can silence them with ``logging``;
``greentrain run`` shows them as the same ``greentrain:`` lines on stderr as before."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess

PY = sys.executable
SCRIPT = """
import logging, sys
from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.run import track

if sys.argv[1] == "silenced":
    logging.getLogger("greentrain").setLevel(logging.ERROR)
elif sys.argv[1] == "info":
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")

class Broken:
    def on_window(self, event):
        raise RuntimeError("tracker down")

meter = FakeMeter({"channels": [{"domain": "cpu", "device": "host", "per_read_j": 2.0}]})
with track("t", store=sys.argv[2], meters=[], meter_objects=[meter], sample_s=0,
           listeners=[Broken()], summary=False):
    client.config(epochs=3)
    for epoch in range(3):
        with client.window("epoch", index=epoch):
            client.log(step=epoch, loss=1.0)
print("done")
"""


def _script(tmp_path, mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", SCRIPT, mode, str(tmp_path / "g.db")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.slow  # three tracked scripts: about 4 s each on the loaded 2-core machine
def test_track_in_a_plain_script_shows_its_warnings_on_stderr_but_not_its_info(tmp_path):
    done = _script(tmp_path, "default")
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    lines = done.stderr.splitlines()
    assert "greentrain: Broken stopped following the run (RuntimeError: tracker down)" in lines
    assert not [line for line in lines if "greentrain: forecast" in line]  # INFO: hidden
    shown = _script(tmp_path, "info").stderr.splitlines()  # the script asks for INFO
    assert [line for line in shown if line.startswith("greentrain.run greentrain: forecast")]


@pytest.mark.slow
def test_a_script_silences_greentrains_warnings_through_logging(tmp_path):
    done = _script(tmp_path, "silenced")
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "greentrain:" not in done.stderr


def test_greentrain_run_shows_the_librarys_lines_on_stderr(tmp_path):
    done = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"), "--meter", "fake",
         "--", "no-such-command-greentrain-logging"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 127
    assert "greentrain: command not found: no-such-command-greentrain-logging" in done.stderr

"""A burst of windows (client.window in a tight loop, then exit) loses none: what the job sent
before it exited belongs to the run and lands, read with live meters before the run's end, or
clipped to the end once the wrapper's drain deadline has passed -- never refused."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from greentrain.meters.fake import FakeMeter
from greentrain.run.window_book import CLIPPED_EVENT, CLIPPED_INFO
from greentrain.store import Store

pytestmark = pytest.mark.slow
PY = sys.executable
DROPS = "client entries dropped"


def _run(tmp_path, script: str, *args: str) -> dict:
    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent(script))
    store = tmp_path / "g.db"
    done = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--", PY,
         str(job), *args], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Store(store) as st:
        return st.get_run(st.list_runs()[0]["id"])


def _assert_every_window_landed(rec: dict, n: int) -> None:
    windows = rec["windows"]
    assert [w["index"] for w in windows] == list(range(n))
    assert all(w["ended_at"] is not None for w in windows)
    assert [e for e in rec["events"] if e["event"] == DROPS] == []


BURST = """
    import sys
    from greentrain import client
    for i in range(int(sys.argv[1])):
        with client.window("w", index=i):
            pass
"""


def test_a_tight_loop_of_windows_then_exit_lands_every_window(tmp_path):
    rec = _run(tmp_path, BURST, "2000")
    _assert_every_window_landed(rec, 2000)


def test_a_burst_the_client_spilled_while_its_wrapper_was_stopped_lands_every_window(tmp_path):
    # The job stops its wrapper, opens 1,500 windows, and exits: the client waits its 5 s
    # for the wrapper, then spills; a helper wakes the wrapper after that. Every boundary in
    # the spill file happened before the job ended and lands.
    script = """
        import os, signal, subprocess, sys
        from greentrain import client
        wrapper = os.getppid()
        subprocess.Popen(["sh", "-c", f"sleep 6.5; kill -CONT {wrapper}"], start_new_session=True)
        os.kill(wrapper, signal.SIGSTOP)
        for i in range(int(sys.argv[1])):
            with client.window("w", index=i):
                client.log(step=i, loss=1.0)
    """
    rec = _run(tmp_path, script, "1500")
    _assert_every_window_landed(rec, 1500)
    assert len(rec["metrics"]) == 1500


def _recorder(tmp_path):
    from greentrain.run.meterset import MeterSet
    from greentrain.run.recorder import Recorder
    from greentrain.run.session import open_writes

    meters = MeterSet([], meters=[FakeMeter()])
    writes, _, _ = open_writes(str(tmp_path / "g.db"), "run-burst")
    recorder = Recorder(writes, "run-burst", meters, sample_s=0)
    recorder.create(["job"], None, None, None)
    meters.start()
    recorder.align_start()
    return recorder, writes


def test_boundaries_read_after_the_drain_deadline_are_clipped_to_the_runs_end_and_counted(
    tmp_path,
):
    from greentrain.run.channel import ChannelServer

    recorder, writes = _recorder(tmp_path)
    server = ChannelServer(recorder)
    server.start()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(server.path)
    lines = []
    for i in range(300):
        lines.append({"k": "wb", "id": f"1:{i}", "name": "w", "info": {"index": i}, "t": i})
        lines.append({"k": "we", "id": f"1:{i}", "t": i + 0.5})
    # half on a connection, half in a client's spill file; the job has exited
    conn.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in lines[:300]))
    conn.close()
    with open(f"{server.dir}/spill-9-ab-1.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(m) + "\n" for m in lines[300:])
    server.close(deadline_s=0.0, clip_s=60.0)  # past the deadline at once: the rest is clipped
    assert recorder.final is not None  # the drain took the run's end
    recorder.finalize("finished", 0)
    assert writes.close(60)
    with Store(tmp_path / "g.db") as st:
        rec = st.get_run("run-burst")
    _assert_every_window_landed(rec, 300)
    clipped = [e for e in rec["events"] if e["event"] == CLIPPED_EVENT]
    # the spill is read after close(): clipped; the connection may have been read live before
    assert [e["count"] for e in clipped] == [recorder.clipped] and recorder.clipped >= 300
    after_end = [w for w in rec["windows"] if w["info"].get(CLIPPED_INFO)]
    assert len(after_end) >= 150  # the spill's windows opened after the end: marked so
    assert rec["client_drops"]["count"] == 0


def test_a_connection_still_sending_past_the_drain_is_cut_within_its_bound_and_counted(tmp_path):
    from greentrain.run.channel import CUT_AT_END, ChannelServer

    recorder, writes = _recorder(tmp_path)
    server = ChannelServer(recorder)
    server.start()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(server.path)
    stop, sending = threading.Event(), threading.Event()

    def outlive_the_job() -> None:  # a process the job left behind, logging without end
        line = b'{"k":"log","step":1,"m":{"a":1},"w":null,"t":0}\n'
        while not stop.is_set():
            try:
                conn.sendall(line * 100)
            except OSError:
                return
            sending.set()

    sender = threading.Thread(target=outlive_the_job, daemon=True)
    sender.start()
    assert sending.wait(60)  # it is sending when the job ends
    started = time.monotonic()
    server.close(deadline_s=0.2, clip_s=0.3)
    took = time.monotonic() - started
    stop.set()
    conn.close()
    sender.join(60)
    assert took < 0.5 + 5  # the drain's bound (plus one select batch), not the sender's life
    recorder.finalize("finished", 0)
    assert writes.close(60)
    with Store(tmp_path / "g.db") as st:
        rec = st.get_run("run-burst")
    assert rec["client_drops"]["reasons"] == {CUT_AT_END: 1}

"""The client never goes silent and never holds the script up: a full listen backlog, a broken
connection and a wrapper stopped with SIGSTOP cost no entry, or the record counts each one lost.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.store import Store

PY = sys.executable


class LineServer:
    """A raw UNIX socket server keeping every complete line; the partial line of a closed
    connection is dropped, as the wrapper's server does."""

    def __init__(self, path: str, backlog: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(backlog)
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.conns: list[socket.socket] = []

    def serve(self) -> None:
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn: socket.socket, lines: int | None = None) -> None:
        buf = b""
        while lines is None or lines > 0:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *complete, buf = buf.split(b"\n")
            with self.cond:
                self.lines.extend(json.loads(x) for x in complete if x)
                self.cond.notify_all()
            if lines is not None:
                lines -= len(complete)

    def wait_for(self, predicate, timeout_s: float = 60.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.lines), timeout=timeout_s)

    def steps(self) -> list[int]:
        return sorted(m["step"] for m in self.lines if m["k"] == "log")


@pytest.fixture(autouse=True)
def _client_logger_enabled():
    """A library configured earlier in this process (``logging.config.dictConfig`` disables
    every logger that exists) must not hide the client's warnings from these tests."""
    for name in ("greentrain", "greentrain.client"):
        logging.getLogger(name).disabled = False


@pytest.fixture
def env(tmp_path, monkeypatch):
    path = str(tmp_path / "ch")
    monkeypatch.setenv("GREENTRAIN_RUN", "r1")
    monkeypatch.setenv("GREENTRAIN_CHANNEL", path)
    return path


def test_a_full_listen_backlog_buffers_entries_until_the_wrapper_accepts(env, caplog):
    server = LineServer(env, backlog=0)
    blocker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    blocker.setblocking(False)
    blocker.connect(env)  # fills the backlog: the client's connect gets EAGAIN
    for step in range(50):
        client.log(step=step, loss=1.0)  # returns at once: buffered
    assert "cannot reach" in caplog.text and server.lines == []
    server.serve()  # accepts the blocker, then the client
    assert client.flush(timeout_s=60)
    assert server.wait_for(lambda lines: len(lines) >= 50)
    assert server.steps() == list(range(50))
    blocker.close()
    server.sock.close()


def test_a_broken_connection_is_made_again_and_the_cut_line_is_sent_whole(env):
    server = LineServer(env, backlog=8)
    client.log(step=0, loss=1.0)
    first, _ = server.sock.accept()
    server.read(first, lines=1)
    first.close()  # the wrapper's end goes away: the next send fails with EPIPE
    for step in range(1, 200):
        client.log(step=step, loss=1.0, pad="x" * 2000)
    server.serve()
    assert client.flush(timeout_s=60)
    assert server.wait_for(lambda lines: len(lines) >= 200)
    assert server.steps() == list(range(200))
    server.sock.close()


STOPPED_WRAPPER_JOB = """
import os, sys, time
from greentrain import client
from greentrain.client import link
if {buffer_bytes}:
    link.BUFFER_BYTES = {buffer_bytes}
client.log(step=-1, ready=1.0)
print("ready", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.01)
for i in range({entries}):
    client.log(step=i, loss=float(i), pad="p" * 40)
with open({done!r}, "w") as fh:
    fh.write(str(os.getpid()))
"""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def _until(predicate, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never came true"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("buffer_bytes", "entries", "all_arrive"),
    [(0, 6000, True), (64 << 10, 60000, False)],  # 60,000 lines, ~6 MB: over a 4 MiB wmem_max
    ids=["8MiB", "64KiB"],
)
def test_a_wrapper_stopped_for_15_s_never_holds_the_script_and_loses_nothing_uncounted(
    tmp_path, buffer_bytes, entries, all_arrive
):
    go, done, store = tmp_path / "go", tmp_path / "done", tmp_path / "g.db"
    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent(STOPPED_WRAPPER_JOB).format(
        buffer_bytes=buffer_bytes, go=str(go), done=str(done), entries=entries))  # fmt: skip
    wrapper = _wrapper(store, job)
    try:
        assert wrapper.stdout.readline().strip() == "ready"
        os.kill(wrapper.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        go.write_text("go")
        _until(lambda: done.exists() and done.read_text())  # the script finished its loop ...
        _until(lambda: _zombie(int(done.read_text())))  # ... and exited, the wrapper stopped
        time.sleep(max(0.0, 15.0 - (time.monotonic() - stopped_at)))  # the fault lasts 15 s
    finally:
        os.kill(wrapper.pid, signal.SIGCONT)
    _, err = wrapper.communicate(timeout=300)
    assert wrapper.returncode == 0, err
    [run] = Store(store).list_runs()
    stored = [m for m in run["metrics"] if m["step"] >= 0]
    assert len(stored) + run["client_drops"]["count"] == entries
    assert sorted({m["step"] for m in stored}) == sorted(m["step"] for m in stored)  # no doubles
    if all_arrive:
        assert len(stored) == entries and run["client_drops"]["count"] == 0
    else:
        assert run["client_drops"]["reasons"]["buffer full"] > 0
        [event] = [e for e in run["events"] if e["event"] == "client entries dropped"]
        assert event["reasons"]["buffer full"] == run["client_drops"]["count"]


STORM_JOB = """
import os
from greentrain import client
children = []
for i in range(100):
    pid = os.fork()
    if pid == 0:
        for n in range(100):
            client.log(step=i * 100 + n, loss=1.0)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
client.log(step=10000, loss=0.0)
"""


def test_a_hundred_processes_connecting_at_once_lose_no_entry(tmp_path):
    store = tmp_path / "g.db"
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--", PY, "-c",
         STORM_JOB], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    [run] = Store(store).list_runs()
    assert sorted(m["step"] for m in run["metrics"]) == list(range(10001))
    assert run["client_drops"]["count"] == 0


RESUMED_JOB = (
    STOPPED_WRAPPER_JOB
    + """
while not os.path.exists({resumed!r}):
    time.sleep(0.01)
client.log(step={entries}, last=1.0)  # the wrapper reads again: the buffer goes out first
print("flushed", client.flush(timeout_s=60), flush=True)
"""
)


def test_entries_buffered_while_the_wrapper_was_stopped_arrive_once_it_runs_again(tmp_path):
    entries = 6000
    go, done, resumed = tmp_path / "go", tmp_path / "done", tmp_path / "resumed"
    store, job = tmp_path / "g.db", tmp_path / "job.py"
    names = {"go": str(go), "done": str(done), "resumed": str(resumed)}
    job.write_text(textwrap.dedent(RESUMED_JOB).format(buffer_bytes=0, entries=entries, **names))
    wrapper = _wrapper(store, job)
    try:
        assert wrapper.stdout.readline().strip() == "ready"
        os.kill(wrapper.pid, signal.SIGSTOP)
        go.write_text("go")
        _until(lambda: done.exists() and done.read_text())  # logged it all, wrapper stopped
    finally:
        os.kill(wrapper.pid, signal.SIGCONT)
    resumed.write_text("1")
    out, err = wrapper.communicate(timeout=300)
    assert wrapper.returncode == 0, err
    assert "flushed True" in out
    [run] = Store(store).list_runs()
    assert sorted(m["step"] for m in run["metrics"]) == list(range(-1, entries + 1))
    assert run["client_drops"]["count"] == 0


def test_drops_counted_while_disconnected_reach_the_wrapper_when_the_client_reconnects(
    env, monkeypatch
):
    from greentrain.client import link

    monkeypatch.setattr(link, "BUFFER_BYTES", 4096)
    for step in range(500):  # no wrapper yet: ~4 KiB kept, the rest dropped
        client.log(step=step, loss=1.0)
    server = LineServer(env, backlog=8)
    server.serve()
    assert client.flush(timeout_s=60)  # connects again after its back-off, sends all
    assert server.wait_for(lambda lines: any(m["k"] == "dr" for m in lines))
    [report] = [m for m in server.lines if m["k"] == "dr"]
    kept = len(server.steps())
    assert report["pid"] == os.getpid() and kept + report["counts"]["buffer full"] == 500
    server.sock.close()


def _wrapper(store, job) -> subprocess.Popen:
    """``greentrain run`` of the script ``job`` into ``store`` with the fake meter, its output
    piped (the script says ``ready`` first)."""
    return subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--", PY,
         str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _recorder(tmp_path):
    from greentrain.run.meterset import MeterSet
    from greentrain.run.recorder import Recorder
    from greentrain.run.session import open_writes

    meters = MeterSet([], meters=[FakeMeter()])
    writes, _, _ = open_writes(str(tmp_path / "g.db"), "run-drops")
    recorder = Recorder(writes, "run-drops", meters, sample_s=0)
    recorder.create(["job"], None, None, None)
    meters.start()
    recorder.align_start()
    return recorder, writes


def test_the_wrapper_books_cumulative_drop_reports_once_and_reads_spill_files(tmp_path):
    from greentrain.run.channel import ChannelServer

    recorder, writes = _recorder(tmp_path)
    server = ChannelServer(recorder)
    server.start()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(server.path)
    report = {"k": "dr", "src": "7-ab", "pid": 7, "counts": {"buffer full": 3}}
    for counts in ({"buffer full": 3}, {"buffer full": 3}, {"buffer full": 5}):
        conn.sendall(json.dumps({**report, "counts": counts}).encode() + b"\n")
    conn.sendall(b'{"k":"log","step":1,"m":{"a":1},"w":null,"t":0}\n{"k":"log","step":2,"m":')
    conn.close()  # the half line is the client's to send again: it is in its spill file
    spill = os.path.join(server.dir, "spill-7-ab.jsonl")
    with open(spill, "w", encoding="utf-8") as fh:
        fh.write('{"k":"wb","id":"7:0","name":"epoch","info":{},"t":0}\n')
        fh.write('{"k":"log","step":2,"m":{"a":2},"w":"epoch","t":0}\n')
        fh.write('{"k":"we","id":"7:0","t":0}\n')
        fh.write(json.dumps({**report, "counts": {"buffer full": 6}}) + "\n")
    server.close()  # the job has exited: its connections and spills, then the run's end
    recorder.finalize("finished", 0)
    assert writes.close(60)  # every write landed
    with Store(tmp_path / "g.db") as st:
        rec = st.get_run("run-drops")
    assert [(m["step"], m["window"]) for m in rec["metrics"]] == [(1, None), (2, "epoch")]
    events = [e for e in rec["events"] if e["event"] == "client entries dropped"]
    assert [e["count"] for e in events if e["pid"] == 7] == [3, 2, 1]
    assert [w["name"] for w in rec["windows"]] == ["epoch"]  # a spilled window lands
    assert rec["client_drops"] == {"count": 6, "reasons": {"buffer full": 6}}

"""A PostgreSQL store that hangs or is down never holds a job up, and loses or doubles nothing:
the wrapper exits within ``--grace`` of its job, the run's writes wait in its journal, and
``greentrain store sync`` lands each exactly once. Real faults: a throwaway server SIGSTOPped
mid-run, and a server that is down (its port closed) when the run starts."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from fixtures.pgserver import PgServer, binaries, raw_rows

from greentrain.store import Store, journal_dir

PY = sys.executable
pytestmark = pytest.mark.skipif(bool(binaries()[1]), reason=binaries()[1] or "n/a")


def _job(ready, ended, steps: int, pause_s: float) -> str:
    """A job that says it started, logs ``steps`` metrics over about ``pause_s * steps`` seconds
    and writes its end instant (monotonic seconds, the same clock in every process)."""
    return (
        "import time\nfrom greentrain import client\n"
        f"open({str(ready)!r}, 'w').close()\n"
        f"time.sleep(0.5)\n"
        f"for i in range({steps}):\n"
        f"    client.log(step=i, loss=1.0 / (i + 1))\n"
        f"    time.sleep({pause_s})\n"
        f"open({str(ended)!r}, 'w').write(repr(time.monotonic()))\n"
    )


def _wait_for(path, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def _sync(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "greentrain", "store", "sync", "--store", url],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _metric_steps(url: str, run_id: str) -> list[int]:
    rows = raw_rows(url, "SELECT step FROM metrics WHERE run_id = ? ORDER BY seq", (run_id,))
    return [r[0] for r in rows]


def test_a_frozen_server_never_holds_the_wrapper_and_every_metric_lands_once(tmp_path):
    server = PgServer().start()
    try:
        url = server.tcp_url(server.new_database())
        Store(url).close()
        ready, ended = tmp_path / "ready", tmp_path / "ended"
        grace_s = 2.0
        wrapper = subprocess.Popen(
            [PY, "-m", "greentrain", "run", "--store", url, "--meter", "fake", "--grace",
             str(grace_s), "--sample-s", "0.5", "--", PY, "-c", _job(ready, ended, 200, 0.01)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_for(ready)
        server.freeze()  # mid-run: connections open, nothing answers
        try:
            out, err = wrapper.communicate(timeout=120)
            wrapper_ended = time.monotonic()
        finally:
            server.thaw()
        assert wrapper.returncode == 0, err
        held = wrapper_ended - float(ended.read_text())
        assert held < grace_s + 3.0, f"the wrapper outlived its job by {held:.1f} s"
        assert "Traceback" not in err and "greentrain store sync" in err
        run_id = raw_rows(url, "SELECT id FROM runs")[0][0]
        synced = _sync(url)
        assert synced.returncode == 0, synced.stderr
        assert _metric_steps(url, run_id) == list(range(200))  # each once, in order
        status = raw_rows(url, "SELECT status, exit_code FROM runs WHERE id = ?", (run_id,))
        assert status == [("finished", 0)]
        assert not list(journal_dir(url).glob("*"))
        again = _sync(url)  # a second sync finds nothing to do and stores nothing twice
        assert "no journals waiting" in again.stdout
        assert _metric_steps(url, run_id) == list(range(200))
    finally:
        server.thaw()
        server.stop()


def test_a_server_down_at_start_runs_the_job_and_sync_lands_the_record(tmp_path):
    server = PgServer().start()
    try:
        db = server.new_database()
        url = server.tcp_url(db)
        Store(url).close()
        server.pause()  # down: its port is closed
        ready, ended = tmp_path / "ready", tmp_path / "ended"
        out = subprocess.run(
            [PY, "-m", "greentrain", "run", "--store", url, "--meter", "fake", "--grace", "1",
             "--", PY, "-c", _job(ready, ended, 20, 0.01)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0 and ended.exists(), out.stderr  # the job ran, whole
        lines = [line for line in out.stderr.splitlines() if line.startswith("greentrain:")]
        assert any("cannot reach the PostgreSQL server" in line and ".jnl" in line
                   for line in lines), lines  # fmt: skip
        waiting = list(journal_dir(url).glob("*.jnl"))
        assert len(waiting) == 1 and server.password not in waiting[0].read_text()
        server.resume()
        synced = _sync(url)
        assert synced.returncode == 0 and "1 journals landed" in synced.stdout, synced.stderr
        run = raw_rows(url, "SELECT id, status, exit_code FROM runs")
        assert [(r[1], r[2]) for r in run] == [("finished", 0)]
        assert _metric_steps(url, run[0][0]) == list(range(20))
        energy = raw_rows(url, "SELECT SUM(energy_j) FROM energy WHERE window_idx = -1")
        assert energy[0][0] > 0
    finally:
        server.stop()


def test_a_wrapper_killed_while_the_server_is_down_is_marked_through_its_journal(tmp_path):
    server = PgServer().start()
    try:
        url = server.tcp_url(server.new_database())
        Store(url).close()
        ready = tmp_path / "ready"
        job = f"import time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(120)\n"
        wrapper = subprocess.Popen(
            [PY, "-m", "greentrain", "run", "--store", url, "--meter", "fake", "--grace", "1",
             "--sample-s", "0.5", "--", PY, "-c", job],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _wait_for(ready)
        time.sleep(1.0)  # a few samples land
        server.pause()
        wrapper.kill()  # SIGKILL: only its watchdog is left to mark the run
        wrapper.wait(timeout=60)
        deadline, marked = time.monotonic() + 120, False
        while not marked and time.monotonic() < deadline:
            marked = any(b'"op":"abandon_run"' in p.read_bytes()
                         for p in journal_dir(url).glob("*.jnl"))  # fmt: skip
            time.sleep(0.2)
        assert marked, "the watchdog left no mark in the journal"
        server.resume()
        synced = _sync(url)
        assert synced.returncode == 0, synced.stderr
        row = raw_rows(url, "SELECT status, events FROM runs")
        assert row[0][0] == "interrupted" and "wrapper died" in row[0][1]
    finally:
        server.stop()


def test_a_connection_limit_reached_at_start_runs_the_job_and_sync_lands_the_record(
    pg_server, tmp_path
):
    role, password = f"lim{time.monotonic_ns() % 10**9}", "limit-pw-7c1e"
    pg_server.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    db = pg_server.new_database()
    pg_server.sql(f"ALTER DATABASE {db} OWNER TO {role}")
    pg_server.sql(f"GRANT ALL ON SCHEMA public TO {role}", db)
    url = f"postgresql://{role}:{password}@127.0.0.1:{pg_server.port}/{db}"
    Store(url).close()
    pg_server.sql(f"ALTER ROLE {role} CONNECTION LIMIT 0")  # every slot taken
    ready, ended = tmp_path / "ready", tmp_path / "ended"
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", url, "--meter", "fake", "--grace", "1",
         "--", PY, "-c", _job(ready, ended, 10, 0.01)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and ended.exists(), out.stderr
    assert "too many connections" in out.stderr and password not in out.stderr
    pg_server.sql(f"ALTER ROLE {role} CONNECTION LIMIT -1")
    synced = _sync(url)
    assert "1 journals landed" in synced.stdout, synced.stderr
    run = raw_rows(url, "SELECT id, status FROM runs")
    assert [r[1] for r in run] == ["finished"]
    assert _metric_steps(url, run[0][0]) == list(range(10))

"""A store that is busy, deleted, read-only or loses a run mid-way: the run's end time, its
energy and every metric survive, the job's exit code comes back, and the cause is said."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from greentrain.errors import StoreError
from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command
from greentrain.store import Store, journal_dir, ops

PY = sys.executable
LOGGING_JOB = """
import time
from greentrain import client
for i in range(30):
    client.log(step=i, loss=1.0 / (i + 1))
    time.sleep(0.01)
"""


def _hold_write_lock(path, seconds: float) -> threading.Thread:
    """Another process's long write transaction, as `sqlite3 g.db 'BEGIN IMMEDIATE'` would hold."""
    ready = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        db.execute("ROLLBACK")
        db.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    ready.wait(10)
    return thread


def _meter() -> FakeMeter:
    return FakeMeter({"channels": [{"domain": "cpu", "device": "host", "power_w": 10.0}]})


def test_a_busy_store_neither_stretches_the_run_nor_loses_a_metric(tmp_path, caplog):
    store = tmp_path / "g.db"
    Store(store).close()
    holder = _hold_write_lock(store, 6.0)
    started = time.monotonic()
    result = run_command([PY, "-c", LOGGING_JOB], store=store, meter_objects=[_meter()],
                         summary=False, sample_s=0)  # fmt: skip
    holder.join()
    run = result.record
    assert result.exit_code == 0 and run["status"] == "finished"
    assert run["duration_s"] < 4.0 < time.monotonic() - started  # the job's time, not the wait
    assert run["energy"]["cpu"]["energy_j"] == pytest.approx(10.0 * run["duration_s"], rel=0.2)
    assert [m["step"] for m in run["metrics"]] == list(range(30))
    assert "locked by another process" in caplog.text  # logged: the CLI shows it on stderr


def test_a_store_locked_past_the_grace_leaves_the_journal_and_sync_lands_it(tmp_path, capsys):
    store = tmp_path / "g.db"
    Store(store).close()
    holder = _hold_write_lock(store, 8.0)
    started = time.monotonic()
    result = run_command([PY, "-c", LOGGING_JOB], store=store, meter_objects=[_meter()],
                         summary=True, sample_s=0, grace_s=1.0)  # fmt: skip
    assert time.monotonic() - started < 7.0  # the wrapper did not wait for the lock to go
    assert result.exit_code == 0 and result.record == {}  # nothing readable yet ...
    waiting = journal_dir(store) / f"{result.run_id}.jnl"
    assert waiting.is_file()  # ... but nothing is lost
    shown = capsys.readouterr().err  # and the summary shows the figures from the journal
    assert f"greentrain run {result.run_id} finished (exit 0)" in shown
    assert " total " in shown and f"read from its journal {waiting}" in shown
    holder.join()
    with Store(store, sync=False) as st:
        report = st.sync_journals()
        run = st.get_run(result.run_id)
    assert report.journals == 1 and not waiting.exists()
    assert run["status"] == "finished" and len(run["metrics"]) == 30


def test_a_store_deleted_mid_run_is_written_again_with_the_run_in_it(tmp_path, caplog):
    store = tmp_path / "g.db"
    job = f"import os, time; time.sleep(0.3); os.remove({str(store)!r}); time.sleep(0.3)"
    result = run_command([PY, "-c", job], store=store, meter_objects=[_meter()], summary=False)
    assert result.exit_code == 0
    assert "was saved to" in caplog.text  # logged: the CLI shows it on stderr
    with Store(store) as st:
        assert st.get_run(result.run_id)["status"] == "finished"


def test_rm_refuses_a_running_run_unless_forced_and_the_wrapper_keeps_the_exit_code(tmp_path):
    store, ready, go = tmp_path / "g.db", tmp_path / "ready", tmp_path / "go"
    job = (f"import os, time; open({str(ready)!r}, 'w').write('1')\n"
           f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
           "raise SystemExit(5)")  # fmt: skip
    proc = subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--",
         PY, "-c", job], stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run_id = Store(store).list_runs()[0]["id"]
    rm = [PY, "-m", "greentrain", "rm", run_id, "--store", str(store), "--yes"]
    refused = subprocess.run(rm, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "still going" in refused.stderr
    forced = subprocess.run([*rm, "--force"], capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0
    go.write_text("1")  # the job ends only now: no race with a slow machine
    assert proc.wait(timeout=60) == 5  # the job's own code, not greentrain's
    err = proc.stderr.read()
    assert "Traceback" not in err and "no run" in err


def test_reading_commands_never_create_a_store_for_a_mistyped_path(tmp_path):
    for command in (["runs"], ["show", "abc"], ["rm", "abc", "--yes"], ["export"]):
        out = subprocess.run(
            [PY, "-m", "greentrain", *command, "--store", str(tmp_path / "typo.db")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode != 0 and "store at" in out.stderr + out.stdout, command
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes anywhere; a read-only folder needs a user"
)
def test_a_read_only_folder_is_named_as_the_cause_not_a_damaged_store(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    Store(folder / "g.db").close()
    folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="read-only"):
            Store(folder / "g.db").write(ops.CreateRun("x", name="x", command=[], cwd="."))
    finally:
        folder.chmod(0o755)


def test_sqlite_saying_readonly_is_reported_as_a_read_only_place_not_damage(tmp_path):
    from greentrain.store.location import locate
    from greentrain.store.sqlite import SQLiteConnection

    conn = SQLiteConnection(locate(tmp_path / "g.db"))
    try:
        message = conn._explain(sqlite3.OperationalError("attempt to write a readonly database"))
        assert "read-only" in message and "damaged" not in message
        full = conn._explain(sqlite3.OperationalError("database or disk is full"))
        assert "disk is full" in full
    finally:
        conn.close()


def test_a_file_that_is_not_a_store_is_refused_before_the_job_starts_and_leaves_no_journal(
    tmp_path,
):
    notes, marker = tmp_path / "notes.db", tmp_path / "ran"
    notes.write_bytes(b"my thesis notes\n" * 10)
    job = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    with pytest.raises(StoreError, match="not a greentrain store"):
        run_command(job, store=notes, meters=[], meter_objects=[_meter()], summary=False)
    assert not marker.exists() and notes.read_bytes() == b"my thesis notes\n" * 10
    folder = journal_dir(notes)
    assert not folder.exists() or not any(folder.iterdir())

"""The run store, on both backends (SQLite file, PostgreSQL database): schema, foreign/damaged
files, stale runs, read-only use, prefixes, deletion, the run object's keys."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from fixtures.pgserver import raw_rows
from fixtures.store import new_run

from greentrain.errors import StoreError
from greentrain.store import SCHEMA_VERSION, Store, ops


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_new_store_is_wal_with_schema_version(tmp_path):
    path = tmp_path / "sub" / "g.db"
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(db.execute("SELECT key, value FROM greentrain_meta").fetchall())
    assert meta == {"app": "greentrain", "schema_version": str(SCHEMA_VERSION)}


def test_default_path_follows_greentrain_store_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENTRAIN_STORE", str(tmp_path / "env.db"))
    with Store() as st:
        assert st.path == tmp_path / "env.db"
    assert (tmp_path / "env.db").exists()


def test_non_sqlite_file_raises_one_line_store_error_and_is_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"my thesis notes\n" * 10)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "not a greentrain store" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == b"my thesis notes\n" * 10


def test_foreign_sqlite_database_raises_store_error_and_is_untouched(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (name TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="foreign"):
        Store(path)
    with pytest.raises(StoreError, match="foreign"):
        Store(path, read_only=True)
    assert path.read_bytes() == before


def test_truncated_store_raises_store_error(tmp_path):
    path = tmp_path / "g.db"
    with Store(path) as st:
        new_run(st, "aaaa00000001")
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x00garbage" * 50)
    with pytest.raises(StoreError) as err:
        Store(path).list_runs()
    assert "\n" not in str(err.value)


def test_read_only_store_that_does_not_exist_raises(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        Store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_stale_running_run_with_dead_wrapper_pid_reads_as_interrupted(store_target):
    with Store(store_target) as st:
        new_run(st, "dead00000001", pid=_dead_pid())
        new_run(st, "live00000001")  # this process: alive
    with Store(store_target, read_only=True) as ro:
        assert ro.get_run("dead")["status"] == "interrupted"
        assert ro.get_run("live")["status"] == "running"
    status = "SELECT status FROM runs WHERE id = 'dead00000001'"
    assert raw_rows(store_target, status) == [("running",)], "a read-only store must never write"
    with Store(store_target) as st:
        assert st.list_runs(status="interrupted")[0]["id"] == "dead00000001"
    assert raw_rows(store_target, status) == [("interrupted",)]


def test_a_dead_wrapper_found_by_a_reader_and_by_its_watchdog_has_one_death_event(store_target):
    """A reader marks the run first, the watchdog's mark comes after: one event, the
    watchdog's (it says what it stopped)."""
    with Store(store_target) as st:
        new_run(st, "dead00000001", pid=_dead_pid())
        assert st.get_run("dead00000001")["status"] == "interrupted"  # the reader's mark
        watchdog = {"t": 2.0, "event": "wrapper died", "detail": "the watchdog stopped the job"}
        st.write(ops.AbandonRun("dead00000001", ended_unix=3.0, event=watchdog))
        run = st.get_run("dead00000001")
    assert [(e["event"], e["detail"]) for e in run["events"]] == [
        ("wrapper died", "the watchdog stopped the job")
    ]


def test_read_only_store_refuses_writes(store_target):
    Store(store_target).close()
    with Store(store_target, read_only=True) as ro, pytest.raises(StoreError, match="read-only"):
        new_run(ro, "aaaa00000001")


def test_run_prefix_resolution_unique_ambiguous_and_missing(store_target):
    with Store(store_target) as st:
        new_run(st, "abc100000000")
        new_run(st, "abc200000000")
        assert st.get_run("abc1")["id"] == "abc100000000"
        with pytest.raises(StoreError, match="ambiguous"):
            st.get_run("abc")
        with pytest.raises(StoreError, match="no run"):
            st.get_run("zzz")
        with pytest.raises(StoreError, match="no run"):
            st.get_run("ab%")  # LIKE's wildcards are literal characters in a prefix


def test_delete_run_removes_run_and_its_rows(store_target):
    with Store(store_target) as st:
        rid = new_run(st, "aaaa00000001")
        cpu = dict(meter="fake", domain="cpu", device="h", method="fake", energy_j=1.0)
        st.write(ops.AddEnergy(rid, rows=[cpu]))
        metric = {"step": 1, "window": None, "time_s": 0.1, "metrics": {"a": 1}}
        st.write(ops.AddMetrics(rid, entries=[metric]))
        st.delete_run(rid[:6])
        assert st.list_runs() == []
    # the store itself, not the API
    assert raw_rows(store_target, "SELECT COUNT(*) FROM energy") == [(0,)]
    assert raw_rows(store_target, "SELECT COUNT(*) FROM metrics") == [(0,)]


def test_text_round_trips_exactly_whatever_it_holds(store_target):
    """NUL, the private-use character the PostgreSQL backend escapes it with, and the rest."""
    nasty = "nul\x00byte \ue000 \ue0000 ' \" % ? \\ %s $1 é 😀"
    with Store(store_target) as st:
        rid = new_run(st, "aaaa00000001", name=nasty, tags={nasty: nasty})
        st.write(ops.BeginWindow(rid, idx=0, name=nasty, started_unix=1.0, info={nasty: nasty}))
        metric = {"step": 1, "window": nasty, "time_s": 0.1, "metrics": {nasty: 1}}
        st.write(ops.AddMetrics(rid, entries=[metric]))
        run = st.get_run(rid)
        assert st.list_runs(name=nasty)[0]["id"] == rid
    assert run["name"] == nasty and run["tags"] == {nasty: nasty}
    assert run["windows"][0]["name"] == nasty and run["metrics"][0]["window"] == nasty
    assert run["metrics"][0][nasty] == 1


def test_run_object_has_contract_keys_and_no_silent_zeros(store_target):
    with Store(store_target) as st:
        rid = new_run(
            st,
            "aaaa00000001",
            tags={"study": "x"},
            carbon={
                "intensity_g_per_kwh": 500.0,
                "source": "t",
                "year": 2023,
                "pue": 1.5,
                "country": "FRA",
                "region": None,
            },
        )
        rows = [
            dict(meter="fake", domain="gpu", device="gpu:0", method="counter", energy_j=3.6e6),
            dict(meter="est", domain="gpu", device="gpu:0", method="estimated", energy_j=1.8e6),
        ]
        st.write(ops.AddEnergy(rid, rows=rows))
        st.write(ops.FinishRun(rid, status="finished", exit_code=0, ended_unix=time.time()))
        run = st.get_run(rid)
    for key in (
        "id",
        "name",
        "status",
        "exit_code",
        "started_at",
        "ended_at",
        "duration_s",
        "tags",
        "config",
        "command",
        "cwd",
        "git",
        "env",
        "energy",
        "energy_j",
        "energy_kwh",
        "co2_g",
        "carbon",
        "meters",
        "windows",
        "metrics",
        "baseline",
        "net_energy_j",
        "group",
        "nodes",
    ):
        assert key in run
    assert run["group"] is None and run["nodes"] == []
    gpu = run["energy"]["gpu"]
    assert gpu["energy_j"] == 3.6e6 and gpu["source"] == "fake:counter"
    assert gpu["alternatives"][0]["disagreement_pct"] == pytest.approx(-50.0)
    assert run["energy"]["cpu"] == {"energy_j": None, "reason": "no meter measured cpu"}
    assert run["energy_kwh"] == pytest.approx(1.0)
    assert run["co2_g"] == pytest.approx(750.0)  # 1 kWh x 500 g/kWh x PUE 1.5
    assert run["tags"] == {"study": "x"}


def test_concurrent_read_modify_writes_of_one_run_lose_nothing(store_target):
    """UpdateConfig and AddEvents read, change and write back a run's row: two stores doing
    it at once (as the wrapper's writer and a reaper might) keep every change."""
    import threading

    with Store(store_target) as st:
        rid = new_run(st, "aaaa00000001")

    def worker(k: int) -> None:
        with Store(store_target) as mine:
            for i in range(15):
                mine.write(ops.UpdateConfig(rid, params={f"w{k}_{i}": i}))
                mine.write(ops.AddEvents(rid, events=[{"t": 0.0, "event": f"w{k}_{i}"}]))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Store(store_target) as st:
        run = st.get_run(rid)
    assert len(run["config"]) == 60 and len(run["events"]) == 60


def test_a_journal_the_store_refuses_is_kept_aside_and_never_blocks_opening(store_target, capsys):
    from greentrain.store import journal_dir, locate, ops
    from greentrain.store.journal import JournalWriter

    Store(store_target).close()
    journal = JournalWriter(locate(store_target), "gone00000001")  # its run was never created
    journal.append(ops.AddEvents("gone00000001", events=[{"t": 1, "event": "x"}]))
    journal.close(remove=False)
    with Store(store_target) as st:
        assert st.list_runs() == []
        report = st.sync_journals()
    assert (journal_dir(store_target) / "gone00000001.jnl.failed").is_file()
    assert report.journals == 0 and not report.stored

"""Readers that never crash: a cell of the wrong type or a NULL is shown as unreadable, with the
run and the field, and the rest is read (``runs``, ``show``, every export); a store whose
schema version cannot be read is read by its tables' shape and never changed; a store on
read-only media is read. Real processes, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from greentrain.record.cells import clean_row

FORMATS = ("csv", "json", "markdown", "latex", "statement", "statement-appendix", "model-card")


def _gt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greentrain", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))  # fmt: skip


def _two_runs(store: str) -> list[str]:
    for name in ("damaged", "intact"):
        done = _gt("run", "--store", store, "--meter", "fake", "--name", name, "--", "true")
        assert done.returncode == 0, done.stderr
    return [_id(store, "damaged"), _id(store, "intact")]


def _id(store: str, name: str) -> str:
    if "://" in store:
        import psycopg

        with psycopg.connect(store) as conn:
            return conn.execute("SELECT id FROM runs WHERE name = %s", (name,)).fetchone()[0]
    db = sqlite3.connect(store)
    return db.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()[0]


def _edit(store: str, *statements: str) -> None:
    """Hand-edit the store (psql or sqlite3 would do the same)."""
    if "://" in store:
        import psycopg

        with psycopg.connect(store, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)
        return
    db = sqlite3.connect(store)
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.close()


def _damage_cells(store: str, run_id: str) -> None:
    if "://" in store:  # typed columns: a hand edit changes the type first
        _edit(
            store,
            "ALTER TABLE energy ALTER COLUMN energy_j TYPE TEXT",
            "ALTER TABLE runs ALTER COLUMN duration_s TYPE TEXT",
        )
    _edit(
        store,
        f"UPDATE energy SET energy_j = 'lots' WHERE run_id = '{run_id}' AND domain = 'gpu'",
        f"UPDATE runs SET duration_s = 'long', best = NULL WHERE id = '{run_id}'",
    )


def _assert_read(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr


def test_a_text_energy_and_duration_are_shown_unreadable_and_the_rest_is_read(store_target):
    damaged, intact = _two_runs(store_target)
    _damage_cells(store_target, damaged)
    listing = _gt("runs", "--store", store_target)
    _assert_read(listing)
    assert intact in listing.stdout and damaged in listing.stdout
    assert f"run {damaged}: runs.duration_s = 'long' is unreadable" in listing.stdout
    assert f"run {damaged}: energy.energy_j (-1 fake gpu gpu:0) = 'lots'" in listing.stdout
    shown = _gt("show", "--store", store_target, damaged)
    _assert_read(shown)
    assert "unreadable runs.duration_s = 'long'" in shown.stdout
    record = json.loads(_gt("show", "--store", store_target, "--json", damaged).stdout)
    assert record["duration_s"] is None
    fields = {c["field"] for c in record["unreadable"]}
    assert {"runs.duration_s", "energy.energy_j (-1 fake gpu gpu:0)"} <= fields
    if "://" not in store_target:  # SQLite: only the gpu cell holds text, the rest is read
        assert record["energy"]["cpu"]["energy_j"] > 0 and len(fields) == 2
    else:  # PostgreSQL: the column became text, so every energy cell is unreadable, none 0
        assert record["energy"]["cpu"]["energy_j"] is None
    for fmt in FORMATS:
        out = _gt("export", "--allow-fake", "--store", store_target, "-f", fmt)
        _assert_read(out)
    statement = _gt("export", "--allow-fake", "--store", store_target, "-f", "statement").stdout
    assert f"run {damaged}: runs.duration_s = 'long' ignored (unreadable in the store)" in statement


def test_a_null_energy_is_unreadable_not_zero(pg_url):
    damaged, _ = _two_runs(pg_url)
    _edit(
        pg_url,
        "ALTER TABLE energy ALTER COLUMN energy_j DROP NOT NULL",
        f"UPDATE energy SET energy_j = NULL WHERE run_id = '{damaged}' AND domain = 'cpu'",
    )
    record = json.loads(_gt("show", "--store", pg_url, "--json", damaged).stdout)
    assert any(c["field"].startswith("energy.energy_j") for c in record["unreadable"])
    assert record["energy"]["cpu"]["energy_j"] != 0


def test_clean_row_clears_wrong_types_keeps_allowed_nulls_and_drops_rows_without_a_figure():
    row, notes = clean_row("runs", {"id": "a", "duration_s": "x", "exit_code": None, "pid": 3.0})
    assert row == {"id": "a", "duration_s": None, "exit_code": None, "pid": 3}
    assert notes == [{"field": "runs.duration_s", "value": "'x'"}]
    energy = {"window_idx": -1, "meter": "m", "domain": "gpu", "device": "g", "energy_j": None}
    assert clean_row("energy", energy)[0] is None
    assert clean_row("runs", {"started_unix": True})[1][0]["field"] == "runs.started_unix"


def test_an_unreadable_schema_version_is_read_and_never_written(store_target):
    _two_runs(store_target)
    _edit(store_target, "UPDATE greentrain_meta SET value = 'abc' WHERE key = 'schema_version'")
    listing = _gt("runs", "--store", store_target)
    assert listing.returncode == 0 and "intact" in listing.stdout, listing.stderr
    assert "schema_version 'abc' cannot be read" in listing.stderr
    for fmt in ("csv", "statement"):
        out = _gt("export", "--allow-fake", "--store", store_target, "-f", fmt)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    refused = _gt("run", "--store", store_target, "--meter", "fake", "--", "true")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "schema_version 'abc' cannot be read" in refused.stderr


def _read_only_mount_works(folder: Path) -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}'"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"a read-only bind mount is not permitted here ({probe.stderr.strip()})"
    return None


@pytest.mark.parametrize("leave_wal", [False, True])
def test_a_store_on_read_only_media_is_listed_shown_and_exported(tmp_path, leave_wal):
    folder = tmp_path / "media"
    folder.mkdir()
    store = folder / "s.db"
    damaged, intact = _two_runs(str(store))
    if leave_wal:  # the -wal file holds the last writes: they must be read too
        assert Path(str(store) + "-wal").exists()
    else:
        sqlite3.connect(store).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        for companion in ("-wal", "-shm"):
            Path(str(store) + companion).unlink(missing_ok=True)
    why = _read_only_mount_works(folder)
    if why:
        pytest.skip(why)
    gt = f"'{sys.executable}' -m greentrain"
    script = (
        f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' && "
        f"! touch '{folder}/probe' 2>/dev/null && "
        f"{gt} runs --store '{store}' && echo ==== && "
        f"{gt} show --store '{store}' {intact} && echo ==== && "
        f"{gt} export --store '{store}' -f csv && echo ==== && "
        f"{gt} export --store '{store}' -f json"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "cannot be written" not in done.stderr and "Traceback" not in done.stderr
    listing, shown, csv, as_json = done.stdout.split("====\n")
    assert damaged in listing and intact in listing
    assert intact in shown and "damaged" not in shown
    assert csv.count("\n") >= 2
    assert json.loads(as_json)["totals"]["all"]["runs"] == 2


@pytest.mark.parametrize("page", ["runs", "compare", "run", "export"])
def test_every_app_page_reads_a_store_with_damaged_cells(tmp_path, monkeypatch, page):
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    from fixtures.runs import study
    from fixtures.store import write_store
    from streamlit.testing.v1 import AppTest

    path = str(write_store(tmp_path / "s.db", study()))
    first = sqlite3.connect(path).execute("SELECT id FROM runs ORDER BY started_unix").fetchone()
    _damage_cells(path, first[0])
    _edit(path, "UPDATE windows SET duration_s = 'x'", "UPDATE metrics SET time_s = 'y'")
    monkeypatch.setenv("GREENTRAIN_APP_STORE", path)
    app = Path(__file__).resolve().parents[2] / "app" / "views" / f"{page}.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]

"""Nothing overwrites a store: every command that writes a file refuses a path that is an SQLite
database (a greentrain store or any other) or one of its companion files, with one line and exit
2, unless ``--force``; the database is left byte for byte as it was."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from greentrain.store import Store


def _gt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greentrain", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))  # fmt: skip


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    done = _gt("run", "--store", str(path), "--meter", "fake", "--", "true")
    assert done.returncode == 0, done.stderr
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    return path


def _refused(done: subprocess.CompletedProcess, flag: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} "), done.stderr
    assert "--force" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "statement", "model-card"])
def test_export_output_onto_the_store_is_refused_and_the_store_kept(store, fmt):
    before = store.read_bytes()
    _refused(_gt("export", "--store", str(store), "-f", fmt, "-o", str(store)), "-o")
    assert store.read_bytes() == before
    assert len(Store(store, read_only=True).list_runs()) == 1


def test_export_output_onto_another_applications_sqlite_database_is_refused(store, tmp_path):
    foreign = tmp_path / "notes.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE notes (t TEXT)").connection.commit()
    before = foreign.read_bytes()
    _refused(_gt("export", "--store", str(store), "-f", "csv", "-o", str(foreign)), "-o")
    assert foreign.read_bytes() == before


def test_export_output_onto_a_stores_write_ahead_log_is_refused(store, tmp_path):
    wal = Path(str(store) + "-wal")
    _refused(_gt("export", "--store", str(store), "-f", "csv", "-o", str(wal)), "-o")


def test_export_plot_onto_an_sqlite_database_is_refused(store, tmp_path):
    figure = tmp_path / "figure.png"
    sqlite3.connect(figure).execute("CREATE TABLE t (x)").connection.commit()
    before = figure.read_bytes()
    done = _gt("export", "--store", str(store), "-f", "csv", "--plot", str(figure))
    _refused(done, "--plot")
    assert figure.read_bytes() == before


def test_export_with_force_overwrites_the_named_database(store, tmp_path):
    copy = tmp_path / "copy.db"
    copy.write_bytes(store.read_bytes())
    done = _gt("export", "--store", str(store), "-f", "csv", "-o", str(copy), "--force")
    assert done.returncode == 0, done.stderr
    assert not copy.read_bytes().startswith(b"SQLite format 3\0")


def test_export_overwrites_an_ordinary_file_without_force(store, tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    done = _gt("export", "--store", str(store), "-f", "csv", "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_text() != "old\n"

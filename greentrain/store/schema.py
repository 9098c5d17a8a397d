"""The store's tables, their version and the migrations between versions.

Tables (:data:`MIGRATIONS` has one function per version):

* ``greentrain_meta``: ``app`` = ``greentrain`` and ``schema_version``; a file without it is a
  foreign database and is never changed.
* ``runs``: one row per run (identity, status, command, environment *description* -- never
  environment variable values --, tags, config, carbon factors, baseline, wrapper pid/host).
* ``energy``: raw cumulative energy per scope (the whole run ``window_idx = -1`` or a window)
  x meter x domain x device, joules, with the method and provenance detail.
* ``windows``: named windows (epochs, eval) with start/end times.
* ``metrics``: what the script logged, one JSON payload per ``client.log`` call.
* ``meters``: every meter's status for the run (available, reason, fix, error mid-run).
* v2: ``runs.events``, what happened to the run besides its job (signals forwarded, processes
  stopped, writes that waited for the store, a dead wrapper), and ``samples``: the run's
  cumulative meter readings and the job's CPU seconds every few seconds, the timeline that
  splits a machine's energy among concurrent runs and gives a dead wrapper's record its energy.

A read-only reader accepts any version up to this one (missing tables and columns read as
empty); writing needs the current schema, migrated in place by the first writable open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from greentrain.errors import StoreError
from greentrain.store.connection import Connection

SCHEMA_VERSION = 2
APP_ID = "greentrain"
CHILD_TABLES = ("energy", "windows", "metrics", "meters", "samples")

_V1 = """
CREATE TABLE greentrain_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    started_at TEXT NOT NULL,
    started_unix REAL NOT NULL,
    ended_at TEXT,
    duration_s REAL,
    tags TEXT NOT NULL DEFAULT '{}',
    config TEXT NOT NULL DEFAULT '{}',
    command TEXT NOT NULL DEFAULT '[]',
    cwd TEXT,
    git TEXT NOT NULL DEFAULT '{}',
    env TEXT NOT NULL DEFAULT '{}',
    carbon TEXT,
    baseline TEXT,
    best TEXT,
    host TEXT,
    pid INTEGER,
    pid_started REAL
);
CREATE INDEX runs_started ON runs (started_unix);
CREATE TABLE energy (
    run_id TEXT NOT NULL,
    window_idx INTEGER NOT NULL,
    meter TEXT NOT NULL,
    domain TEXT NOT NULL,
    device TEXT NOT NULL,
    method TEXT NOT NULL,
    energy_j REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, window_idx, meter, domain, device)
);
CREATE TABLE windows (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    duration_s REAL,
    info TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    step INTEGER,
    window TEXT,
    time_s REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX metrics_run ON metrics (run_id, seq);
CREATE TABLE meters (
    run_id TEXT NOT NULL,
    meter TEXT NOT NULL,
    available INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    fix TEXT NOT NULL DEFAULT '',
    error TEXT,
    devices TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, meter)
)
"""


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (sqlite3's executescript commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_v1(db: sqlite3.Connection) -> None:
    _execute_script(db, _V1)
    db.execute("INSERT INTO greentrain_meta (key, value) VALUES ('app', ?)", (APP_ID,))


_V2 = """
ALTER TABLE runs ADD COLUMN events TEXT NOT NULL DEFAULT '[]';
CREATE TABLE samples (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t REAL NOT NULL,
    cpu_s REAL,
    readings TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
)
"""


def _migrate_v2(db: sqlite3.Connection) -> None:
    _execute_script(db, _V2)


# version -> function bringing the schema from version-1 to version.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_v1, 2: _migrate_v2}


def schema_version(conn: Connection) -> int:
    """The file's schema version (0 for an empty file); StoreError for a foreign or newer one."""
    db, path = conn.db, conn.path
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if "greentrain_meta" not in tables:
        raise StoreError(
            f"{path} is an SQLite file without the greentrain schema (a foreign "
            "database); pass another --store path (the file was left untouched)"
        )
    meta = dict(db.execute("SELECT key, value FROM greentrain_meta").fetchall())
    if meta.get("app") != APP_ID:
        raise StoreError(f"{path} is not a greentrain store; pass another --store path")
    version = int(meta.get("schema_version", "1"))
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema v{version}, newer than this greentrain "
            f"(v{SCHEMA_VERSION}); upgrade greentrain"
        )
    return version


def check_schema(conn: Connection) -> int:
    """For a read-only store: the schema must exist (nothing is changed); its version."""
    version = schema_version(conn)
    if version == 0:
        raise StoreError(f"{conn.path} is an empty file, not a greentrain store")
    return version


def init_schema(conn: Connection) -> None:
    """Create or migrate the schema, in WAL mode; a foreign file is refused before any change."""

    def setup() -> None:
        schema_version(conn)
        db = conn.db
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")

    conn.retry(setup)
    if conn.retry(lambda: schema_version(conn)) == SCHEMA_VERSION:
        return  # current: no write lock needed, so a busy store does not delay opening it
    with conn.transaction() as db:
        version = schema_version(conn)
        for v in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[v](db)
        if version < SCHEMA_VERSION:
            db.execute(
                "INSERT OR REPLACE INTO greentrain_meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

"""The store's tables, their version and the migrations between versions (both backends).

Tables (:data:`MIGRATIONS` has one function per version):

* ``greentrain_meta``: ``app`` = ``greentrain`` and ``schema_version``; a file or database
  without it is foreign and is never changed.
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
* v3: ``runs.group_id`` and ``runs.group_rank``: the run is one node's part of a run group
  (the wrappers of one multi-node job; NULL for a run of its own) and the wrapper's rank in it
  (SLURM task or torchrun node rank); ``runs.election``: which physical devices this wrapper
  metered and which another wrapper of its group metered instead (JSON).
* v4: ``journal_applied`` (run_id, n): the journal entries (:mod:`greentrain.store.journal`)
  already applied, the unique key that makes applying a journal idempotent: an entry's key is
  inserted (``ON CONFLICT DO NOTHING``) in the same transaction as its rows, so a retry, a
  second importer or a crash mid-apply never applies it twice. ``runs.pid_ticks``: the
  wrapper's start time in clock ticks since boot (``/proc/PID/stat`` field 22), which a
  wall-clock step cannot change; ``runs.parent_id``: the run whose process tree this run was
  started in (nested runs; NULL for a top-level run).
* v5 (clusters and reads at scale, issue 24): ``runs.launch_id``: the launch a group member
  belongs to (SLURM job step and restart, an explicit ``GREENTRAIN_LAUNCH_ID``, or generated; a
  reused ``--group`` never mixes two launches); ``runs.group_size``: the members the group
  expects (``--nnodes``, ``PET_NNODES``, SLURM's tasks, ``--group-size``); ``runs.global_rank``:
  the lowest global ``RANK`` of the workers on this node, as they report it;
  ``runs.heartbeat_unix`` and ``runs.heartbeat_s``: the wrapper's last sign of life (unix s) and
  its period (s), by which a reader on any host tells a lost node. Indexes for the queries of a
  listing (:mod:`greentrain.store.selection`) and of the concurrent-run split
  (:mod:`greentrain.store.concurrency`): ``runs_listing`` covers what a listing groups, filters
  and orders by (so the choice reads the index, not the wide rows), ``runs_host`` the runs of a
  host by start with what their spans need, ``runs_running`` the running runs of a host (dead
  wrappers reaped). The child tables' primary keys already lead with ``run_id``.

The DDL is written once, for SQLite; :meth:`Connection.ddl` turns it into PostgreSQL's types
(``REAL`` -> ``DOUBLE PRECISION``, integers -> ``BIGINT``, an identity column for the metrics'
sequence). A read-only reader accepts any version up to this one (missing tables and columns
read as empty); writing needs the current schema, migrated in place by the first writable open
(concurrent first writers of a PostgreSQL store take turns on an advisory lock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from greentrain.errors import StoreError
from greentrain.store.connection import Connection, Tx

SCHEMA_VERSION = 5
APP_ID = "greentrain"
CHILD_TABLES = ("energy", "windows", "metrics", "meters", "samples")
KEY_TABLE = "journal_applied"  # (run_id, n) of every journal entry applied (v4)

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
    "window" TEXT,
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


def _execute_script(conn: Connection, tx: Tx, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction, in the backend's types."""
    for statement in script.split(";"):
        if statement.strip():
            tx.execute(conn.ddl(statement))


def _migrate_v1(conn: Connection, tx: Tx) -> None:
    _execute_script(conn, tx, _V1)
    tx.execute("INSERT INTO greentrain_meta (key, value) VALUES ('app', ?)", (APP_ID,))


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


def _migrate_v2(conn: Connection, tx: Tx) -> None:
    _execute_script(conn, tx, _V2)


_V3 = """
ALTER TABLE runs ADD COLUMN group_id TEXT;
ALTER TABLE runs ADD COLUMN group_rank INTEGER;
ALTER TABLE runs ADD COLUMN election TEXT NOT NULL DEFAULT '{}';
CREATE INDEX runs_group ON runs (group_id)
"""


def _migrate_v3(conn: Connection, tx: Tx) -> None:
    _execute_script(conn, tx, _V3)


_V4 = """
CREATE TABLE journal_applied (
    run_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, n)
);
ALTER TABLE runs ADD COLUMN pid_ticks INTEGER;
ALTER TABLE runs ADD COLUMN parent_id TEXT;
CREATE INDEX runs_parent ON runs (parent_id)
"""


def _migrate_v4(conn: Connection, tx: Tx) -> None:
    _execute_script(conn, tx, _V4)


# ---- v5, cluster block (issue 24: launch, expected size, worker ranks, heartbeat) ----------
_V5_CLUSTER = """
ALTER TABLE runs ADD COLUMN launch_id TEXT;
ALTER TABLE runs ADD COLUMN group_size INTEGER;
ALTER TABLE runs ADD COLUMN global_rank INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_unix REAL;
ALTER TABLE runs ADD COLUMN heartbeat_s REAL
"""
# ---- end of v5 cluster block --------------------------------------------------------------


# ---- v5, reads at scale (the "reads" change): indexes only ----------------------------------
_V5_READS = """
CREATE INDEX runs_listing ON runs (started_unix, group_id, id, status, name);
CREATE INDEX runs_host ON runs (host, started_unix, duration_s, status, id, group_id);
CREATE INDEX runs_running ON runs (status, host)
"""


def _migrate_v5(conn: Connection, tx: Tx) -> None:
    _execute_script(conn, tx, _V5_CLUSTER)
    _execute_script(conn, tx, _V5_READS)


# ---- end of v5, reads at scale ------------------------------------------------------------


# version -> function bringing the schema from version-1 to version.
MIGRATIONS: dict[int, Callable[[Connection, Tx], None]] = {
    1: _migrate_v1,
    2: _migrate_v2,
    3: _migrate_v3,
    4: _migrate_v4,
    5: _migrate_v5,
}


def _what(conn: Connection) -> str:
    return f"database {conn.path}" if conn.kind == "postgresql" else str(conn.path)


def schema_version(conn: Connection, tx: Tx | None = None) -> int:
    """The store's schema version (0 when empty); StoreError for a foreign or newer one.

    ``tx``: read inside this transaction (migrations); else through :meth:`Connection.query`.
    """
    tables = conn.tables(tx)
    if not tables:
        return 0
    if "greentrain_meta" not in tables:
        kind = "database" if conn.kind == "postgresql" else "an SQLite file"
        raise StoreError(
            f"{_what(conn)} is {kind} without the greentrain schema (a foreign database of "
            "another application); pass another --store (it was left untouched)"
        )
    sql = "SELECT key, value FROM greentrain_meta"
    rows = tx.execute(sql).fetchall() if tx is not None else [
        (r["key"], r["value"]) for r in conn.query(sql)
    ]  # fmt: skip
    meta = dict(rows)
    if meta.get("app") != APP_ID:
        raise StoreError(f"{_what(conn)} is not a greentrain store; pass another --store")
    version = _version_of(meta.get("schema_version", "1"))
    if version is None:
        if not conn.read_only:
            raise StoreError(
                f"store {conn.path}: its schema_version {meta.get('schema_version')!r} cannot be "
                "read, so it is not changed; fix greentrain_meta.schema_version or read it with "
                "a read-only command (greentrain runs/show/export)"
            )
        version = _version_from_columns(conn)
        logging.getLogger(__name__).warning(
            "store %s: schema_version %r cannot be read; reading it as v%d (its tables' shape)",
            conn.path, meta.get("schema_version"), version,
        )  # fmt: skip
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {conn.path} has schema v{version}, newer than this greentrain "
            f"(v{SCHEMA_VERSION}); upgrade greentrain"
        )
    return version


def _version_of(value: object) -> int | None:
    """A stored schema version as a number (None when it is not a positive integer)."""
    try:
        version = int(str(value).strip())
    except ValueError:
        return None
    return version if version > 0 else None


def _version_from_columns(conn: Connection) -> int:
    """The schema version a store's ``runs`` columns show (for a store whose stored version
    cannot be read)."""
    columns = set(conn.columns("runs"))
    for version, column in ((5, "launch_id"), (4, "parent_id"), (3, "group_id"), (2, "events")):
        if column in columns:
            return version
    return 1


def _no_store(conn: Connection) -> StoreError:
    if conn.kind == "postgresql":
        return StoreError(
            f"no greentrain store in database {conn.path} (it has no tables); record a run "
            "into it first (greentrain run --store URL) or pass another --store"
        )
    return StoreError(f"{conn.path} is an empty file, not a greentrain store")


def check_schema(conn: Connection) -> int:
    """For a read-only store: the schema must exist (nothing is changed); its version."""
    version = conn.retry(lambda: schema_version(conn), reading=True)
    if version == 0:
        raise _no_store(conn)
    return version


def init_schema(conn: Connection) -> None:
    """Create or migrate the schema; a foreign store is refused before any change. An empty
    PostgreSQL database is only given a schema when the connection may create one."""
    version = conn.retry(lambda: schema_version(conn), reading=True)
    if version == 0 and conn.kind == "postgresql" and not conn.create:
        raise _no_store(conn)
    conn.setup()
    if version == SCHEMA_VERSION:
        return  # current: no write lock needed, so a busy store does not delay opening it

    def migrate(tx: Tx) -> None:
        conn.lock_schema(tx)
        found = schema_version(conn, tx)
        for v in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[v](conn, tx)
        if found < SCHEMA_VERSION:
            tx.execute(
                "INSERT INTO greentrain_meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    conn.write(migrate)

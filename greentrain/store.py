"""The one reader/writer of run records: an SQLite file in WAL mode.

Default path: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``. Several processes may write
one store at once: every write is a short ``BEGIN IMMEDIATE`` transaction with a busy timeout and
retries, so nothing is lost. A file that is not SQLite, or SQLite without our schema, raises
:class:`~greentrain.errors.StoreError` with a one-line message and is never touched.

Tables (schema v1; :data:`MIGRATIONS` adds one function per later version):

* ``runs``: one row per run (identity, status, command, environment *description* -- never
  environment variable values --, tags, config, carbon factors, baseline, wrapper pid/host).
* ``energy``: raw cumulative energy per scope (the whole run ``window_idx = -1`` or a window)
  x meter x domain x device, joules, with the method and provenance detail.
* ``windows``: named windows (epochs, eval) with start/end times.
* ``metrics``: what the script logged, one JSON payload per ``client.log`` call.
* ``meters``: every meter's status for the run (available, reason, fix, error mid-run).

Readers get the run object documented in CONTRACTS.md (``get_run`` / ``list_runs``).
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from greentrain.errors import StoreError
from greentrain.meters.base import DOMAINS, METHOD_PRIORITY

DEFAULT_PATH = Path("reports") / "greentrain.db"
ENV_STORE = "GREENTRAIN_STORE"
SCHEMA_VERSION = 1
APP_ID = "greentrain"
RUN_SCOPE = -1  # window_idx of whole-run energy rows
STATUSES = ("running", "finished", "failed", "interrupted")
ESTIMATED_METHODS = ("estimated",)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_RETRY_S = 60.0

T = TypeVar("T")


def _executescript(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (sqlite3's executescript commits)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_v1(db: sqlite3.Connection) -> None:
    _executescript(
        db,
        """
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
        );
        """,
    )
    db.execute("INSERT INTO greentrain_meta (key, value) VALUES ('app', ?)", (APP_ID,))


# version -> function bringing the schema from version-1 to version (v2 adds one entry here).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_v1}


def default_path() -> Path:
    """``$GREENTRAIN_STORE`` if set, else ``./reports/greentrain.db``."""
    env = os.environ.get(ENV_STORE, "").strip()
    return Path(env) if env else DEFAULT_PATH


def now_iso(t: float | None = None) -> str:
    """ISO-8601 UTC timestamp with milliseconds (``2026-11-23T03:16:31.123Z``)."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False, sort_keys=False)


def _json_default(obj: Any) -> Any:
    """Tensors/numpy scalars -> float/int/list; anything else -> its str()."""
    for attr in ("item", "tolist"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            try:
                return fn()
            except Exception:  # a multi-element tensor has no item()
                continue
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def clean_json(value: Any) -> Any:
    """``value`` made JSON-safe: NaN/inf -> None, tensors/numpy -> Python numbers."""
    value = json.loads(json.dumps(value, default=_json_default, allow_nan=True))
    return _no_nan(value)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _loads(text: str | None, default: Any = None) -> Any:
    if text is None:
        return default
    return json.loads(text)


def _process_started(pid: int) -> float | None:
    """Creation time (unix seconds) of process ``pid``; None if it does not exist."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def pid_alive(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` on this host is still the process that started the run."""
    if not pid:
        return False
    created = _process_started(pid)
    if created is None:
        return False
    return started is None or abs(created - started) < 2.0


class Store:
    """A run store file.

    Args:
        path: the SQLite file; None -> :func:`default_path`. Created (with its directory)
            unless ``read_only``.
        read_only: open with ``mode=ro``; never writes (stale ``running`` runs are *reported*
            as interrupted without updating the file).

    Raises:
        StoreError: the file is not SQLite, is SQLite without the greentrain schema, is from a
            newer greentrain, is damaged, or (read-only) does not exist.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False):
        self.path = Path(path) if path is not None else default_path()
        self.read_only = read_only
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._check_file()
        self._db = self._connect()
        try:
            if read_only:
                self._check_schema(self._db)
            else:
                self._retry(self._init_schema)
        except StoreError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StoreError(self._damaged(err)) from err

    # -- opening ---------------------------------------------------------------------------

    def _damaged(self, err: BaseException) -> str:
        return (
            f"store {self.path} cannot be read ({err}); it is damaged or not a greentrain "
            "store: pass another --store path (the file was left untouched)"
        )

    def _check_file(self) -> None:
        p = self.path
        if p.exists() and p.is_dir():
            raise StoreError(f"store {p} is a directory; pass a file path with --store")
        if not p.exists():
            if self.read_only:
                raise StoreError(f"no store at {p}; run `greentrain run` first or pass --store")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the store directory {p.parent}: {err}") from err
            return
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as err:
            raise StoreError(f"cannot read store {p}: {err}") from err
        if head and head != _SQLITE_MAGIC:
            raise StoreError(
                f"{p} is not a greentrain store (not an SQLite file); pass another --store "
                "path (the file was left untouched)"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
                db = sqlite3.connect(
                    uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False
                )
            else:
                db = sqlite3.connect(
                    str(self.path), timeout=30, isolation_level=None, check_same_thread=False
                )
            db.execute("PRAGMA busy_timeout = 30000")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err
        return db

    def _version(self, db: sqlite3.Connection) -> int:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return 0
        if "greentrain_meta" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite file without the greentrain schema (a foreign "
                "database); pass another --store path (the file was left untouched)"
            )
        meta = dict(db.execute("SELECT key, value FROM greentrain_meta").fetchall())
        if meta.get("app") != APP_ID:
            raise StoreError(f"{self.path} is not a greentrain store; pass another --store path")
        version = int(meta.get("schema_version", "1"))
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema v{version}, newer than this greentrain "
                f"(v{SCHEMA_VERSION}); upgrade greentrain"
            )
        return version

    def _check_schema(self, db: sqlite3.Connection) -> None:
        version = self._version(db)
        if version == 0:
            raise StoreError(f"{self.path} is an empty file, not a greentrain store")
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema v{version}; open it once with a writable "
                "greentrain command (e.g. `greentrain runs`) to migrate it"
            )

    def _init_schema(self) -> None:
        db = self._db
        self._version(db)  # refuse a foreign file before changing anything in it
        if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._version(db)
            for v in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](db)
            if version < SCHEMA_VERSION:
                db.execute(
                    "INSERT OR REPLACE INTO greentrain_meta (key, value) "
                    "VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # -- plumbing --------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        deadline = time.monotonic() + _RETRY_S
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as err:
                msg = str(err).lower()
                if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                    raise StoreError(f"store {self.path}: {err}") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _write(self, statements: Iterable[tuple[str, tuple | list]]) -> None:
        """Run ``statements`` (sql, params) in one short IMMEDIATE transaction, with retries."""
        if self.read_only:
            raise StoreError(f"store {self.path} was opened read-only")
        stmts = list(statements)

        def tx() -> None:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in stmts:
                        self._db.execute(sql, params)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

        try:
            self._retry(tx)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"store {self.path}: write failed ({err})") from err

    def _query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        def q() -> list:
            with self._lock:
                cur = self._db.execute(sql, params)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

        try:
            return self._retry(q)
        except sqlite3.DatabaseError as err:
            raise StoreError(self._damaged(err)) from err

    def close(self) -> None:
        """Close the connection (the object is unusable afterwards)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer API (the harness) ----------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        name: str,
        command: list[str],
        cwd: str,
        tags: Mapping[str, str] | None = None,
        git: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        carbon: Mapping[str, Any] | None = None,
        started_unix: float | None = None,
        pid: int | None = None,
    ) -> None:
        """Insert a ``running`` run owned by process ``pid`` (default: this one) on this host."""
        t = time.time() if started_unix is None else started_unix
        pid = os.getpid() if pid is None else pid
        self._write(
            [
                (
                    "INSERT INTO runs (id, name, status, started_at, started_unix, tags, config,"
                    " command, cwd, git, env, carbon, host, pid, pid_started)"
                    " VALUES (?, ?, 'running', ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        name,
                        now_iso(t),
                        t,
                        _dumps(dict(tags or {})),
                        _dumps(list(command)),
                        cwd,
                        _dumps(dict(git or {})),
                        _dumps(dict(env or {})),
                        _dumps(dict(carbon)) if carbon is not None else None,
                        self.host,
                        pid,
                        _process_started(pid),
                    ),
                )
            ]
        )

    def update_config(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's config (later keys win)."""
        params = clean_json(dict(params))

        def tx() -> None:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute(
                        "SELECT config FROM runs WHERE id = ?", (run_id,)
                    ).fetchone()
                    if row is None:
                        raise StoreError(f"no run {run_id} in {self.path}")
                    config = _loads(row[0], {})
                    config.update(params)
                    self._db.execute(
                        "UPDATE runs SET config = ? WHERE id = ?", (_dumps(config), run_id)
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

        self._retry(tx)

    def set_run_fields(self, run_id: str, **fields: Any) -> None:
        """Update plain columns (carbon, baseline, best, git, env, name ...); dicts -> JSON."""
        allowed = {"name", "carbon", "baseline", "best", "git", "env", "tags", "command", "cwd"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot set {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        vals = [_dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        self._write([(f"UPDATE runs SET {cols} WHERE id = ?", (*vals, run_id))])

    def set_meters(self, run_id: str, meters: Iterable[Mapping[str, Any]]) -> None:
        """Record (replace) each meter's status: meter, available, reason, fix, error, devices."""
        stmts = [
            (
                "INSERT OR REPLACE INTO meters (run_id, meter, available, reason, fix, error,"
                " devices) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    m["meter"],
                    int(bool(m.get("available"))),
                    m.get("reason") or "",
                    m.get("fix") or "",
                    m.get("error"),
                    _dumps(list(m.get("devices") or [])),
                ),
            )
            for m in meters
        ]
        self._write(stmts)

    def add_energy(self, run_id: str, window_idx: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """Store (replace) energy rows for a scope: ``window_idx`` = -1 (whole run) or a window.

        Each row: meter, domain, device, method, energy_j (joules), detail (dict).
        """
        stmts = []
        for r in rows:
            energy_j = float(r["energy_j"])
            if not math.isfinite(energy_j):
                continue
            stmts.append(
                (
                    "INSERT OR REPLACE INTO energy (run_id, window_idx, meter, domain, device,"
                    " method, energy_j, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        window_idx,
                        r["meter"],
                        r["domain"],
                        r["device"],
                        r["method"],
                        energy_j,
                        _dumps(clean_json(dict(r.get("detail") or {}))),
                    ),
                )
            )
        if stmts:
            self._write(stmts)

    def begin_window(
        self, run_id: str, idx: int, name: str, started_unix: float, info: Mapping | None = None
    ) -> None:
        """Open window ``idx`` named ``name``."""
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO windows (run_id, idx, name, started_at, info)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (run_id, idx, name, now_iso(started_unix), _dumps(clean_json(info or {}))),
                )
            ]
        )

    def end_window(
        self,
        run_id: str,
        idx: int,
        ended_unix: float,
        duration_s: float,
        energy_rows: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Close window ``idx`` (duration in seconds) and store its energy rows."""
        self._write(
            [
                (
                    "UPDATE windows SET ended_at = ?, duration_s = ? WHERE run_id = ? AND idx = ?",
                    (now_iso(ended_unix), duration_s, run_id, idx),
                )
            ]
        )
        self.add_energy(run_id, idx, energy_rows)

    def add_metrics(self, run_id: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Append logged metrics: each entry has step, window, time_s and a metrics dict."""
        stmts = [
            (
                "INSERT INTO metrics (run_id, step, window, time_s, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    run_id,
                    e.get("step"),
                    e.get("window"),
                    float(e["time_s"]),
                    _dumps(clean_json(dict(e.get("metrics") or {}))),
                ),
            )
            for e in entries
        ]
        if stmts:
            self._write(stmts)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        exit_code: int | None,
        ended_unix: float | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Set the final status (finished/failed/interrupted), exit code, end time, duration.

        ``duration_s`` is the job's wall time in seconds (default: end - record creation).
        """
        if status not in STATUSES:
            raise ValueError(f"status {status!r} not in {STATUSES}")
        t = time.time() if ended_unix is None else ended_unix
        self._write(
            [
                (
                    "UPDATE runs SET status = ?, exit_code = ?, ended_at = ?,"
                    " duration_s = COALESCE(?, ? - started_unix) WHERE id = ?",
                    (status, exit_code, now_iso(t), duration_s, t, run_id),
                )
            ]
        )

    def delete_run(self, run_id: str) -> None:
        """Delete a run and all its rows (``run_id`` may be a unique prefix)."""
        full = self.resolve_id(run_id)
        self._write(
            [(f"DELETE FROM {table} WHERE run_id = ?", (full,)) for table in _CHILD_TABLES]
            + [("DELETE FROM runs WHERE id = ?", (full,))]
        )

    # -- reader API ------------------------------------------------------------------------

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the run whose id is or starts with ``run_id_or_prefix``.

        Raises:
            StoreError: no run matches, or the prefix is ambiguous.
        """
        key = run_id_or_prefix.strip()
        if not key:
            raise StoreError("empty run id")
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._query(
            "SELECT id FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 11",
            (key, escaped + "%"),
        )
        ids = [r["id"] for r in rows]
        if key in ids:
            return key
        if not ids:
            raise StoreError(f"no run {key!r} in {self.path}; list runs with `greentrain runs`")
        if len(ids) > 1:
            shown = ", ".join(ids[:10])
            raise StoreError(f"run prefix {key!r} is ambiguous ({shown}); give more characters")
        return ids[0]

    def get_run(self, run_id_or_prefix: str) -> dict[str, Any]:
        """The run object (CONTRACTS.md) of one run, by id or unique prefix."""
        full = self.resolve_id(run_id_or_prefix)
        rows = self._query("SELECT * FROM runs WHERE id = ?", (full,))
        return self._assemble([self._reap(rows[0])])[0]

    def list_runs(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run objects, oldest first, filtered by status, tags (all must match), name, ids."""
        sql, params = "SELECT * FROM runs", []
        where = []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_unix, id"
        rows = [self._reap(r) for r in self._query(sql, params)]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        if tags:
            want = {str(k): str(v) for k, v in tags.items()}
            rows = [
                r for r in rows if all(_loads(r["tags"], {}).get(k) == v for k, v in want.items())
            ]
        return self._assemble(rows)

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper process is gone on this host -> ``interrupted``."""
        if row["status"] != "running" or row["host"] != self.host:
            return row
        if pid_alive(row["pid"], row["pid_started"]):
            return row
        row = dict(row)
        row["status"] = "interrupted"
        if not self.read_only:
            try:
                self._write(
                    [
                        (
                            "UPDATE runs SET status = 'interrupted' WHERE id = ? AND "
                            "status = 'running'",
                            (row["id"],),
                        )
                    ]
                )
            except StoreError:
                pass  # reported as interrupted anyway; the next writer will retry
        return row

    def _children(self, table: str, ids: list[str], order: str) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {i: [] for i in ids}
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._query(
                f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY {order}", chunk
            ):
                out[r["run_id"]].append(r)
        return out

    def _assemble(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["id"] for r in rows]
        energy = self._children("energy", ids, "window_idx, meter, domain, device")
        windows = self._children("windows", ids, "idx")
        metrics = self._children("metrics", ids, "seq")
        meters = self._children("meters", ids, "meter")
        return [
            assemble_run(r, energy[r["id"]], windows[r["id"]], metrics[r["id"]], meters[r["id"]])
            for r in rows
        ]


_CHILD_TABLES = ("energy", "windows", "metrics", "meters")


# -- assembling the run object (pure functions) ----------------------------------------------


def _priority(method: str) -> int:
    try:
        return METHOD_PRIORITY.index(method)
    except ValueError:
        return len(METHOD_PRIORITY)


def is_estimated(method: str, detail: Mapping[str, Any] | None = None) -> bool:
    """Whether a figure is a model estimate rather than a measurement."""
    return method in ESTIMATED_METHODS or bool((detail or {}).get("estimated"))


def _candidates(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """domain -> meter -> {"method", "energy_j", "devices", "estimated"} summed over devices.

    A meter mixing methods across devices is ranked by its least direct method (as
    :func:`greentrain.meters.select_best` does).
    """
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        detail = _loads(r["detail"], {}) if isinstance(r.get("detail"), str) else r.get("detail")
        cand = out.setdefault(r["domain"], {}).setdefault(
            r["meter"], {"method": r["method"], "energy_j": 0.0, "devices": {}, "estimated": False}
        )
        if _priority(r["method"]) > _priority(cand["method"]):
            cand["method"] = r["method"]
        cand["energy_j"] += r["energy_j"]
        cand["devices"][r["device"]] = cand["devices"].get(r["device"], 0.0) + r["energy_j"]
        cand["estimated"] = cand["estimated"] or is_estimated(r["method"], detail)
    return out


def choose_best(cands: Mapping[str, Mapping[str, Any]]) -> str:
    """The meter with the most direct figure: METHOD_PRIORITY order, then meter name."""
    return min(cands, key=lambda m: (_priority(cands[m]["method"]), m))


def _disagreement_pct(value: float, best: float) -> float | None:
    if best == 0:
        return None
    return (value - best) / best * 100.0


def _no_figure_reason(meters: list[dict], domain: str) -> str:
    problems = [
        f"{m['meter']}: {m['error'] or m['reason']}"
        for m in meters
        if (not m["available"]) or m["error"]
    ]
    used = [m["meter"] for m in meters if m["available"] and not m["error"]]
    text = f"no meter measured {domain}"
    if used:
        text += f" (used: {', '.join(used)})"
    if problems:
        text += "; " + "; ".join(problems)
    return text


def assemble_energy(
    rows: list[dict], best: Mapping[str, Mapping[str, Any]] | None, meters: list[dict]
) -> dict[str, dict[str, Any]]:
    """The run object's ``energy`` dict (see CONTRACTS.md).

    ``best`` is the per-domain choice the harness stored at finalize
    (:func:`greentrain.meters.select_best`); without it (a run still going, or one whose wrapper
    died) the figures are assembled here from the whole-run rows with the same ranking.
    """
    out: dict[str, dict[str, Any]] = {}
    if best:
        for domain in DOMAINS:
            entry = best.get(domain)
            out[domain] = (
                dict(entry)
                if entry
                else {"energy_j": None, "reason": _no_figure_reason(meters, domain)}
            )
        return out
    cands = _candidates(rows)
    for domain in DOMAINS:
        dc = cands.get(domain)
        if not dc:
            out[domain] = {"energy_j": None, "reason": _no_figure_reason(meters, domain)}
            continue
        key = choose_best(dc)
        b = dc[key]
        out[domain] = {
            "energy_j": b["energy_j"],
            "source": f"{key}:{b['method']}",
            "estimated": b["estimated"],
            "devices": dict(b["devices"]),
            "alternatives": [
                {
                    "meter": m,
                    "method": c["method"],
                    "energy_j": c["energy_j"],
                    "disagreement_pct": _disagreement_pct(c["energy_j"], b["energy_j"]),
                }
                for m, c in sorted(dc.items(), key=lambda kv: (_priority(kv[1]["method"]), kv[0]))
                if m != key
            ],
        }
    return out


def _meter_dicts(meters: list[dict]) -> list[dict]:
    return [
        {
            "meter": m["meter"],
            "available": bool(m["available"]),
            "reason": m["reason"] or "",
            "fix": m["fix"] or "",
            "error": m["error"],
            "devices": _loads(m["devices"], []),
        }
        for m in meters
    ]


def assemble_run(
    row: dict, energy: list[dict], windows: list[dict], metrics: list[dict], meters: list[dict]
) -> dict[str, Any]:
    """Build the documented run object from the raw rows of one run."""
    meter_list = _meter_dicts(meters)
    best = _loads(row["best"], None)
    run_rows = [e for e in energy if e["window_idx"] == RUN_SCOPE]
    energy_obj = assemble_energy(run_rows, best, meter_list)
    if best is None and not run_rows:
        why = (
            "run still going: energy is recorded when it ends"
            if row["status"] == "running"
            else "the wrapper process ended before the final meter reading"
        )
        energy_obj = {d: {"energy_j": None, "reason": why} for d in DOMAINS}
    figures = [d["energy_j"] for d in energy_obj.values() if d.get("energy_j") is not None]
    energy_j = sum(figures) if figures else None
    energy_kwh = energy_j / 3.6e6 if energy_j is not None else None
    carbon = _loads(row["carbon"], None)
    co2_g = None
    if energy_kwh is not None and carbon and carbon.get("intensity_g_per_kwh") is not None:
        co2_g = energy_kwh * float(carbon["intensity_g_per_kwh"]) * float(carbon.get("pue", 1.0))
    baseline = _loads(row["baseline"], None)
    net = None
    if energy_j is not None and baseline and row["duration_s"] is not None:
        idle_j = sum(
            float(baseline["power_w"][d]) * row["duration_s"]
            for d, e in energy_obj.items()
            if e.get("energy_j") is not None and d in baseline.get("power_w", {})
        )
        net = energy_j - idle_j

    sources = {d: e["source"].split(":", 1)[0] for d, e in energy_obj.items() if e.get("source")}
    win_out = []
    for w in windows:
        wrows = [e for e in energy if e["window_idx"] == w["idx"]]
        wc = _candidates(wrows)
        wenergy: dict[str, Any] = {}
        for domain in DOMAINS:
            dc = wc.get(domain)
            if not dc:
                wenergy[domain] = None
                continue
            key = sources.get(domain)
            if key not in dc:
                key = choose_best(dc)
            wenergy[domain] = {
                "energy_j": dc[key]["energy_j"],
                "source": f"{key}:{dc[key]['method']}",
                "estimated": dc[key]["estimated"],
                "devices": dict(dc[key]["devices"]),
            }
        win_out.append(
            {
                "name": w["name"],
                "index": w["idx"],
                "started_at": w["started_at"],
                "ended_at": w["ended_at"],
                "duration_s": w["duration_s"],
                "info": _loads(w["info"], {}),
                "energy": wenergy,
            }
        )
    metric_out = []
    for m in metrics:
        entry = {"step": m["step"], "window": m["window"], "time_s": m["time_s"]}
        entry.update(_loads(m["payload"], {}))
        metric_out.append(entry)
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "exit_code": row["exit_code"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "duration_s": row["duration_s"],
        "tags": _loads(row["tags"], {}),
        "config": _loads(row["config"], {}),
        "command": _loads(row["command"], []),
        "cwd": row["cwd"],
        "git": _loads(row["git"], {}),
        "env": _loads(row["env"], {}),
        "host": row["host"],
        "energy": energy_obj,
        "energy_j": energy_j,
        "energy_kwh": energy_kwh,
        "co2_g": co2_g,
        "carbon": carbon,
        "meters": meter_list,
        "windows": win_out,
        "metrics": metric_out,
        "baseline": baseline,
        "net_energy_j": net,
    }

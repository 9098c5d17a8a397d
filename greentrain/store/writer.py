"""The store's writer API, what the harness calls over a run's life.

``create_run`` (status ``running``) -> ``set_meters`` / ``update_config`` / ``begin_window`` /
``end_window`` / ``add_metrics`` / ``add_energy`` -> ``set_run_fields(best=...)`` ->
``finish_run``. Each call is one short transaction (retried whole while the store is busy);
values are stored as JSON made safe by :mod:`greentrain.record.jsonable` (NaN and infinities
become null), and plain text columns (a name, a working directory) pass through the same
:func:`greentrain.record.text.storable` (text that is not UTF-8 is escaped and marked). The
SQL is the same for both backends (``ON CONFLICT`` upserts, ``?`` placeholders).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.jsonable import dumps, loads, to_jsonable
from greentrain.record.text import storable
from greentrain.record.vocabulary import STATUSES
from greentrain.store.liveness import process_started
from greentrain.store.recovery import StoreRecovery
from greentrain.store.schema import CHILD_TABLES
from greentrain.units import iso_utc

_SETTABLE = frozenset(
    {"name", "carbon", "baseline", "best", "git", "env", "tags", "command", "cwd", "election"}
)


METRIC_ROWS = 100  # metrics entries per INSERT statement (500 parameters)


def now_iso(t: float | None = None) -> str:
    """ISO-8601 UTC timestamp of ``t`` (unix seconds; default now)."""
    return iso_utc(time.time() if t is None else t)


class Store(StoreRecovery):
    """The one reader/writer of run records: an SQLite file in WAL mode, or a PostgreSQL
    database (a ``postgresql://`` URL).

    Default: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``. Several processes (and, with
    PostgreSQL, machines) may write one store at once, and nothing is lost. See
    :class:`StoreReader` for the arguments.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
    ):
        super().__init__(path, read_only=read_only, create=create)
        if not read_only:
            self.import_spools()

    def __enter__(self) -> Store:
        return self

    def _write(self, statements: Iterable[tuple[str, tuple | list]]) -> None:
        """Run ``statements`` (sql, params) in one transaction; runs of the same statement
        (a batch of metrics, a reading's energy rows) go as one ``executemany`` (one round trip
        to a PostgreSQL server instead of one per row)."""
        batches: list[tuple[str, list]] = []
        for sql, raw in statements:
            params = [storable(p) if isinstance(p, str) else p for p in raw]  # plain text columns
            if batches and batches[-1][0] == sql:
                batches[-1][1].append(params)
            else:
                batches.append((sql, [params]))

        def run(tx: Any) -> None:
            for sql, rows in batches:
                if len(rows) == 1:
                    tx.execute(sql, rows[0])
                else:
                    tx.executemany(sql, rows)

        self._conn.write(run)

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
        group_id: str | None = None,
        group_rank: int | None = None,
        parent_id: str | None = None,
    ) -> None:
        """Insert a ``running`` run owned by process ``pid`` (default: this one) on this host;
        ``group_id``: the run group it is one node's part of, ``group_rank`` its rank there;
        ``parent_id``: the run it is nested in (:mod:`greentrain.record.nesting`)."""
        t = time.time() if started_unix is None else started_unix
        pid = os.getpid() if pid is None else pid
        self._write(
            [
                (
                    "INSERT INTO runs (id, name, status, started_at, started_unix, tags, config,"
                    " command, cwd, git, env, carbon, host, pid, pid_started, group_id, group_rank,"
                    " parent_id) VALUES (?, ?, 'running', ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?)",
                    (
                        run_id,
                        name,
                        now_iso(t),
                        t,
                        dumps(dict(tags or {})),
                        dumps(list(command)),
                        cwd,
                        dumps(dict(git or {})),
                        dumps(dict(env or {})),
                        dumps(dict(carbon)) if carbon is not None else None,
                        self.host,
                        pid,
                        process_started(pid),
                        group_id,
                        group_rank,
                        parent_id,
                    ),
                )
            ]
        )

    def update_config(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's config (later keys win), in one transaction."""

        def merge(tx: Any) -> None:
            row = tx.execute(
                "SELECT config FROM runs WHERE id = ?" + self._conn.for_update, (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            config = loads(row[0], {})
            config.update(to_jsonable(dict(params)))
            tx.execute("UPDATE runs SET config = ? WHERE id = ?", (dumps(config), run_id))

        self._conn.write(merge)

    def set_run_fields(self, run_id: str, **fields: Any) -> None:
        """Update plain columns (carbon, baseline, best, git, env, name ...); dicts -> JSON."""
        bad = set(fields) - _SETTABLE
        if bad:
            raise ValueError(f"cannot set {sorted(bad)}")
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        vals = [dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        self._write([(f"UPDATE runs SET {cols} WHERE id = ?", (*vals, run_id))])

    def set_meters(self, run_id: str, meters: Iterable[Mapping[str, Any]]) -> None:
        """Record (replace) each meter's status: meter, available, reason, fix, error, devices."""
        self._write(
            (
                "INSERT INTO meters (run_id, meter, available, reason, fix, error, devices)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, meter) DO UPDATE SET"
                " available = excluded.available, reason = excluded.reason, fix = excluded.fix,"
                " error = excluded.error, devices = excluded.devices",
                (
                    run_id,
                    m["meter"],
                    int(bool(m.get("available"))),
                    m.get("reason") or "",
                    m.get("fix") or "",
                    m.get("error"),
                    dumps(list(m.get("devices") or [])),
                ),
            )
            for m in meters
        )

    def add_energy(self, run_id: str, window_idx: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """Store (replace) energy rows for a scope: ``window_idx`` = -1 (whole run) or a window.

        Each row: meter, domain, device, method, energy_j (joules), detail (dict). A
        non-finite energy is not stored.
        """
        stmts = [
            (
                "INSERT INTO energy (run_id, window_idx, meter, domain, device, method,"
                " energy_j, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, window_idx, meter, domain, device) DO UPDATE SET"
                " method = excluded.method, energy_j = excluded.energy_j,"
                " detail = excluded.detail",
                (
                    run_id,
                    window_idx,
                    r["meter"],
                    r["domain"],
                    r["device"],
                    r["method"],
                    float(r["energy_j"]),
                    dumps(dict(r.get("detail") or {})),
                ),
            )
            for r in rows
            if math.isfinite(float(r["energy_j"]))
        ]
        if stmts:
            self._write(stmts)

    def begin_window(
        self, run_id: str, idx: int, name: str, started_unix: float, info: Mapping | None = None
    ) -> None:
        """Open window ``idx`` named ``name``."""
        self._write(
            [
                (
                    "INSERT INTO windows (run_id, idx, name, started_at, info)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, idx) DO UPDATE SET"
                    " name = excluded.name, started_at = excluded.started_at,"
                    " ended_at = NULL, duration_s = NULL, info = excluded.info",
                    (run_id, idx, name, now_iso(started_unix), dumps(info or {})),
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
        """Append logged metrics: each entry has step, window, time_s and a metrics dict.

        One multi-row INSERT per :data:`METRIC_ROWS` entries, kept in order (one round trip to
        a PostgreSQL server for a whole batch)."""
        rows = [
            (run_id, e.get("step"), e.get("window"), float(e["time_s"]),
             dumps(dict(e.get("metrics") or {})))
            for e in entries
        ]  # fmt: skip
        stmts = []
        for start in range(0, len(rows), METRIC_ROWS):
            chunk = rows[start : start + METRIC_ROWS]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            sql = f'INSERT INTO metrics (run_id, step, "window", time_s, payload) VALUES {values}'
            stmts.append((sql, [v for row in chunk for v in row]))
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
        """Set the final status, exit code, end time and duration.

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

    def add_events(self, run_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Append events (``{"t", "event", ...}``) to the run's ``events`` list."""
        events = [dict(e) for e in events]
        if not events:
            return

        def append(tx: Any) -> None:
            row = tx.execute(
                "SELECT events FROM runs WHERE id = ?" + self._conn.for_update, (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            tx.execute(
                "UPDATE runs SET events = ? WHERE id = ?",
                (dumps(loads(row[0], []) + to_jsonable(events)), run_id),
            )

        self._conn.write(append)

    def add_sample(
        self,
        run_id: str,
        seq: int,
        t: float,
        cpu_s: float | None,
        readings: Iterable[Mapping[str, Any]],
    ) -> None:
        """Store the run's ``seq``-th sample: unix time, job CPU seconds and cumulative readings
        (:func:`greentrain.record.readings.sample_readings`)."""
        self._write(
            [
                (
                    "INSERT INTO samples (run_id, seq, t, cpu_s, readings)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO UPDATE SET"
                    " t = excluded.t, cpu_s = excluded.cpu_s, readings = excluded.readings",
                    (run_id, seq, t, cpu_s, dumps([dict(r) for r in readings])),
                )
            ]
        )

    def delete_run(self, run_id: str) -> list[str]:
        """Delete a run, or every run of a group, and all their rows (``run_id`` may be a
        unique prefix); returns the ids of the runs deleted."""
        full = self.resolve_id(run_id)
        ids = self.member_ids(full) if self.is_group(full) else [full]
        self._write(
            [(f"DELETE FROM {table} WHERE run_id = ?", (i,)) for i in ids for table in CHILD_TABLES]
            + [("DELETE FROM runs WHERE id = ?", (i,)) for i in ids]
        )
        return ids

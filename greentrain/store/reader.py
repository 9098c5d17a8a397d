"""Reading runs back: ids and prefixes, one run, filtered lists, and dead wrappers reaped.

The rows are turned into the documented run object by :mod:`greentrain.record.assemble`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.assemble import assemble_run
from greentrain.record.jsonable import loads
from greentrain.record.split import Timeline, attribute
from greentrain.store.connection import Connection, default_path
from greentrain.store.liveness import pid_alive
from greentrain.store.schema import SCHEMA_VERSION, check_schema, init_schema

_CHUNK = 500  # ids per ``IN (...)`` query


class StoreReader:
    """A run store opened for reading (:class:`~greentrain.store.Store` adds the writes).

    Args:
        path: the SQLite file; None -> ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``.
            Created (with its directory) unless ``read_only``.
        read_only: open with ``mode=ro``; never writes (stale ``running`` runs are *reported*
            as interrupted without updating the file).
        create: create a missing store (False: a missing file is a StoreError).

    Raises:
        StoreError: the file is not SQLite, is SQLite without the greentrain schema, is from a
            newer greentrain, is damaged, or (read-only) does not exist.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
    ):
        self.path = Path(path) if path is not None else default_path()
        self.read_only = read_only
        self.host = socket.gethostname()
        self._conn = Connection(self.path, read_only=read_only, create=create)
        try:
            if read_only:
                self.version = check_schema(self._conn)
            else:
                init_schema(self._conn)
                self.version = SCHEMA_VERSION
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise StoreError(self._conn.damaged(err)) from err

    def close(self) -> None:
        """Close the connection (the object is unusable afterwards)."""
        self._conn.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the run whose id is or starts with ``run_id_or_prefix``.

        Raises:
            StoreError: no run matches, or the prefix is ambiguous.
        """
        key = run_id_or_prefix.strip()
        if not key:
            raise StoreError("empty run id")
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._conn.query(
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
        """The run object of one run, by id or unique prefix."""
        full = self.resolve_id(run_id_or_prefix)
        rows = self._conn.query("SELECT * FROM runs WHERE id = ?", (full,))
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
        sql, params, where = "SELECT * FROM runs", [], []
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
        rows = [self._reap(r) for r in self._conn.query(sql, params)]
        if status is not None:
            rows = [r for r in rows if r["status"] == status]
        if tags:
            want = {str(k): str(v) for k, v in tags.items()}
            rows = [
                r for r in rows if all(loads(r["tags"], {}).get(k) == v for k, v in want.items())
            ]
        return self._assemble(rows)

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper process is gone on this host is reported
        ``interrupted`` (:class:`~greentrain.store.Store` also records it)."""
        if self._wrapper_gone(row):
            return dict(row, status="interrupted")
        return row

    def _wrapper_gone(self, row: dict[str, Any]) -> bool:
        return (
            row["status"] == "running"
            and row["host"] == self.host
            and not pid_alive(row["pid"], row["pid_started"])
        )

    def _children(self, table: str, ids: list[str], order: str) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {i: [] for i in ids}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for r in self._conn.query(
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
        splits = self._splits(ids)
        return [
            assemble_run(
                r,
                energy[r["id"]],
                windows[r["id"]],
                metrics[r["id"]],
                meters[r["id"]],
                splits.get(r["id"]),
            )  # fmt: skip
            for r in rows
        ]

    def _splits(self, ids: list[str]) -> dict[str, dict]:
        """Each run's share of the machine-scope energy it shared with concurrent runs on its
        host (:mod:`greentrain.record.split`); runs that overlapped no other get nothing."""
        if self.version < 2 or not ids:
            return {}
        now = time.time()
        spans = {
            r["id"]: (r["host"], r["started_unix"], r["started_unix"] + r["duration_s"]
                      if r["duration_s"] is not None else now)
            for r in self._conn.query("SELECT id, host, started_unix, duration_s FROM runs")
        }  # fmt: skip
        overlaps: dict[str, list[str]] = {}
        for run_id in ids:
            host, start, end = spans[run_id]
            others = [o for o, (h, s, e) in spans.items()
                      if o != run_id and h == host and s < end and e > start]  # fmt: skip
            if others:
                overlaps[run_id] = others
        if not overlaps:
            return {}
        needed = sorted(set(overlaps) | {o for others in overlaps.values() for o in others})
        timelines = {
            run_id: Timeline.from_rows(
                run_id, [dict(r, readings=loads(r["readings"], [])) for r in rows]
            )
            for run_id, rows in self._children("samples", needed, "seq").items()
        }
        return {
            run_id: attribute(timelines[run_id], [timelines[o] for o in others])
            for run_id, others in overlaps.items()
        }

"""Reading runs back: ids and prefixes, one run or group, filtered lists, dead wrappers reaped.

The rows are turned into the documented run object by :mod:`greentrain.record.assemble`; the
runs of one group (one multi-node job, a wrapper per node) are shown as one run object by
:mod:`greentrain.record.group`, with a ``nodes`` list. A group's id names it wherever a run id
does (``show``, ``rm``, ``export --run``); a member's own id still reads that member alone.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.assemble import assemble_run
from greentrain.record.cells import clean_row
from greentrain.record.group import assemble_group, member_of
from greentrain.record.jsonable import loads
from greentrain.record.nesting import ancestor_chain
from greentrain.record.split import Timeline, attribute
from greentrain.store.backend import connect
from greentrain.store.groups import GroupReads
from greentrain.store.journal import has_pending
from greentrain.store.liveness import node_lost, pid_alive
from greentrain.store.location import StoreLocation, locate
from greentrain.store.schema import SCHEMA_VERSION, check_schema, init_schema

_CHUNK = 500  # ids per ``IN (...)`` query


class StoreReader(GroupReads):
    """A run store opened for reading (:class:`~greentrain.store.Store` adds the writes).

    Args:
        path: an SQLite file or a ``postgresql://`` URL; None -> ``$GREENTRAIN_STORE`` or
            ``./reports/greentrain.db``. Created (a file, or the schema in an empty database)
            unless ``read_only`` or not ``create``.
        read_only: never writes (stale ``running`` runs are *reported* as interrupted without
            updating the store).
        create: create a missing store (False: a missing file or an empty database is a
            StoreError).

    Raises:
        StoreError: the store is not SQLite/PostgreSQL with the greentrain schema, is from a
            newer greentrain, is damaged, cannot be reached, or (read-only) does not exist.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | StoreLocation | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
    ):
        self.location = locate(path)
        self.path: Path | str = (
            self.location.path if self.location.path is not None else self.location.shown
        )
        self.read_only = read_only
        self.host = socket.gethostname()
        self._conn = connect(self.location, read_only=read_only, create=create)
        try:
            if read_only:
                self.version = check_schema(self._conn)
            else:
                init_schema(self._conn)
                self.version = SCHEMA_VERSION
        except BaseException:
            self._conn.close()
            raise

    @property
    def kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.location.kind

    def close(self) -> None:
        """Close the connection (the object is unusable afterwards)."""
        self._conn.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ids --------------------------------------------------------------------------------------
    def _matching(self, column: str, key: str) -> list[str]:
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._conn.query(
            f"SELECT DISTINCT {column} AS k FROM runs WHERE {column} = ? OR {column} LIKE ? "
            "ESCAPE '\\' ORDER BY k LIMIT 11",
            (key, escaped + "%"),
        )
        return [r["k"] for r in rows if r["k"] is not None]

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the run or group whose id is or starts with ``run_id_or_prefix``.

        Raises:
            StoreError: nothing matches, or the prefix is ambiguous.
        """
        key = run_id_or_prefix.strip()
        if not key:
            raise StoreError("empty run id")
        ids = self._matching("id", key)
        if key in ids:
            return key
        groups = self._matching("group_id", key) if self.version >= 3 else []
        if key in groups:
            return key
        found = ids + [g for g in groups if g not in ids]
        if not found:
            raise StoreError(f"no run {key!r} in {self.path}; list runs with `greentrain runs`")
        if len(found) > 1:
            shown = ", ".join(found[:10])
            raise StoreError(f"run prefix {key!r} is ambiguous ({shown}); give more characters")
        return found[0]

    def is_group(self, full_id: str) -> bool:
        """Whether ``full_id`` (from :meth:`resolve_id`) names a group rather than one run."""
        if self.version < 3 or self._conn.query("SELECT id FROM runs WHERE id = ?", (full_id,)):
            return False
        return bool(self._conn.query("SELECT id FROM runs WHERE group_id = ?", (full_id,)))

    def member_ids(self, group_id: str) -> list[str]:
        """The ids of a group's member runs, oldest first."""
        rows = self._conn.query(
            "SELECT id FROM runs WHERE group_id = ? ORDER BY started_unix, id", (group_id,)
        )
        return [r["id"] for r in rows]

    # -- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id_or_prefix: str) -> dict[str, Any]:
        """The run object of one run or group, by id or unique prefix."""
        full = self.resolve_id(run_id_or_prefix)
        return self.list_runs(ids=[full])[0]

    def list_runs(
        self,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run objects, oldest first, filtered by status, tags (all must match), name, ids.

        A group's members appear as one run object (the group); ``ids`` may name groups, and
        a member named by its own id is listed alone.
        """
        sql, params = "SELECT * FROM runs", []
        singles: set[str] = set()
        if ids is not None:
            ids = list(dict.fromkeys(ids))
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            sql += f" WHERE id IN ({marks})"
            params.extend(ids)
            if self.version >= 3:
                sql += f" OR group_id IN ({marks})"
                params.extend(ids)
            singles = set(ids)
        notes: dict[str, list[dict[str, str]]] = {}
        rows = []
        for raw in self._conn.query(sql + " ORDER BY started_unix, id", params):
            row, found = clean_row("runs", raw)
            notes.setdefault(raw["id"], []).extend(found)
            rows.append(self._reap(row))  # type: ignore[arg-type]  # runs rows are never dropped
        objects = self._objects(rows, singles, notes)
        self._link_nested(objects)
        if status is not None:
            objects = [o for o in objects if o["status"] == status]
        if name is not None:
            objects = [o for o in objects if o["name"] == name]
        if tags:
            want = {str(k): str(v) for k, v in tags.items()}
            objects = [o for o in objects if _has_tags(o, want)]
        return objects

    def _objects(
        self, rows: list[dict[str, Any]], singles: set[str], notes: dict[str, list[dict]]
    ) -> list[dict[str, Any]]:
        """Run objects of ``rows``: members of a group joined into the group's object, except
        members named in ``singles`` (listed alone), oldest first. ``notes``: the cells that
        could not be read, per run id (:mod:`greentrain.record.cells`), completed here with the
        child tables' and put in each run object's ``unreadable`` list."""
        runs, energy = self._assemble(rows, notes)
        for row, run in zip(rows, runs, strict=True):
            run["unreadable"] = notes.get(row["id"], [])
        out: list[tuple[float, str, dict]] = []
        groups: dict[str, list] = {}
        for row, run in zip(rows, runs, strict=True):
            group = row.get("group_id")
            if group is not None and (not singles or group in singles):
                groups.setdefault(group, []).append(member_of(run, row, energy[row["id"]]))
            if group is None or row["id"] in singles:
                out.append((row["started_unix"] or 0.0, row["id"], run))
        for group, members in groups.items():
            start = min(m.started_unix for m in members)
            whole = assemble_group(group, members)
            whole["unreadable"] = [n for m in members for n in m.run["unreadable"]]
            out.append((start, group, whole))
        out.sort(key=lambda item: (item[0], item[1]))
        return [run for _, _, run in out]

    def _parents(self) -> dict[str, str]:
        """Every nested run's parent id (run id -> parent id), from the whole store."""
        if self.version < 4:
            return {}
        rows = self._conn.query("SELECT id, parent_id FROM runs WHERE parent_id IS NOT NULL")
        return {r["id"]: r["parent_id"] for r in rows if isinstance(r["parent_id"], str)}

    def _link_nested(self, objects: list[dict[str, Any]]) -> None:
        """Each run object's ``parent``, ``ancestors`` and ``children``
        (:mod:`greentrain.record.nesting`)."""
        parents = self._parents()
        children: dict[str, list[str]] = {}
        for child, parent in parents.items():
            children.setdefault(parent, []).append(child)
        for run in objects:
            run["parent"] = parents.get(run["id"])
            run["ancestors"] = ancestor_chain(run["id"], parents)
            run["children"] = sorted(children.get(run["id"], []))

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper process is gone on this host is reported
        ``interrupted`` (:class:`~greentrain.store.Store` also records it)."""
        if self._wrapper_gone(row):
            return dict(row, status="interrupted")
        return row

    def _wrapper_gone(self, row: dict[str, Any]) -> bool:
        """Whether the run is ``running`` but its wrapper is gone: on this host, its pid is
        gone and no journal of it waits here (its end may be in the journal); on another host,
        its heartbeat is older than its bound (a pid means nothing here)."""
        if row["status"] != "running":
            return False
        if row["host"] != self.host:
            return node_lost(row)
        return not pid_alive(
            row["pid"], row["pid_started"], row.get("pid_ticks")
        ) and not has_pending(self.location, row["id"])

    def _children(
        self, table: str, ids: list[str], order: str, notes: dict[str, list] | None = None
    ) -> dict[str, list[dict]]:
        """Each run's rows of ``table``, cells of the wrong type cleared (and noted in
        ``notes``, per run id) and rows without a cell they need left out."""
        out: dict[str, list[dict]] = {i: [] for i in ids}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for r in self._conn.query(
                f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY {order}", chunk
            ):
                row, found = clean_row(table, r)
                if found and notes is not None:
                    notes.setdefault(r["run_id"], []).extend(found)
                if row is not None:
                    out[r["run_id"]].append(row)
        return out

    def _assemble(
        self, rows: list[dict[str, Any]], notes: dict[str, list[dict]]
    ) -> tuple[list[dict], dict[str, list[dict]]]:
        ids = [r["id"] for r in rows]
        energy = self._children("energy", ids, "window_idx, meter, domain, device", notes)
        windows = self._children("windows", ids, "idx", notes)
        metrics = self._children("metrics", ids, "seq", notes)
        meters = self._children("meters", ids, "meter", notes)
        splits = self._splits(ids)
        runs = [
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
        return runs, energy

    def _splits(self, ids: list[str]) -> dict[str, dict]:
        """Each run's share of the machine-scope energy it shared with concurrent runs on its
        host (:mod:`greentrain.record.split`; a group's runs share as one party); runs that
        overlapped no other get nothing."""
        if self.version < 2 or not ids:
            return {}
        now = time.time()
        group = "group_id" if self.version >= 3 else "NULL AS group_id"
        rows = [
            clean_row("runs", r)[0]
            for r in self._conn.query(
                f"SELECT id, host, status, started_unix, duration_s, {group} FROM runs"
            )
        ]
        # a run whose start cannot be read overlaps nothing; one that ended without a readable
        # duration is taken to have lasted no time (it shares nothing rather than everything)
        rows = [dict(r, duration_s=0.0) if r["duration_s"] is None and r["status"] != "running"
                else r for r in rows if r["started_unix"] is not None]  # fmt: skip
        parents = self._parents()  # a nested run shares its outermost ancestor's party
        party = {r["id"]: r["group_id"] or r["id"] for r in rows}
        spans = {
            r["id"]: (r["host"], r["started_unix"], r["started_unix"] + r["duration_s"]
                      if r["duration_s"] is not None else now,
                      party.get((ancestor_chain(r["id"], parents) or [r["id"]])[-1], r["id"]))
            for r in rows
        }  # fmt: skip
        overlaps: dict[str, list[str]] = {}
        for run_id in (i for i in ids if i in spans):
            host, start, end, party = spans[run_id]
            others = [o for o, (h, s, e, p) in spans.items()
                      if o != run_id and h == host and s < end and e > start]  # fmt: skip
            if any(spans[o][3] != party for o in others):
                overlaps[run_id] = others
        if not overlaps:
            return {}
        needed = sorted(set(overlaps) | {o for others in overlaps.values() for o in others})
        timelines = {
            run_id: Timeline.from_rows(
                run_id, [dict(r, readings=loads(r["readings"], [])) for r in rows],
                party=spans[run_id][3],
            )
            for run_id, rows in self._children("samples", needed, "seq").items()
        }  # fmt: skip
        return {
            run_id: attribute(timelines[run_id], [timelines[o] for o in others])
            for run_id, others in overlaps.items()
        }


def _has_tags(run: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    tags = run.get("tags")
    return isinstance(tags, Mapping) and all(tags.get(k) == v for k, v in want.items())

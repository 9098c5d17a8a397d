"""Reading runs back: ids and prefixes, one run or group, filtered lists, dead wrappers reaped.

The rows are turned into the documented run object by :mod:`greentrain.record.assemble`; the
runs of one group (one multi-node job, a wrapper per node) are shown as one run object by
:mod:`greentrain.record.group`, with a ``nodes`` list. A group's id names it wherever a run id
does (``show``, ``rm``, ``export --run``); a member's own id still reads that member alone.

A listing is chosen in SQL (:mod:`greentrain.store.selection`: filters, order, page) and only
its runs' rows are read (:mod:`greentrain.store.rows`, one query per table for the page), so
``runs`` on 10,000 runs reads the 100 it shows.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.cells import clean_row
from greentrain.store.backend import connect
from greentrain.store.groups import GroupReads
from greentrain.store.journal import has_pending
from greentrain.store.liveness import node_lost, pid_alive
from greentrain.store.location import StoreLocation, locate
from greentrain.store.schema import SCHEMA_VERSION, check_schema, init_schema
from greentrain.store.selection import (
    Entry,
    RunPage,
    RunQuery,
    chunks,
    entries,
    selected,
    tag_candidates,
)
from greentrain.store.sibling_reads import SiblingReads


class StoreReader(SiblingReads, GroupReads):
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

    @contextlib.contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Statements in the block wait at most ``seconds`` for a busy or unreachable store
        (then StoreBusy)."""
        with self._conn.patience(seconds):
            yield

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
        since: float | None = None,
        limit: int | None = None,
        offset: int = 0,
        summary: bool = False,
    ) -> list[dict[str, Any]]:
        """Run objects, oldest first, filtered by status, tags (all must match), name, ids,
        start (``since``, unix seconds); ``limit``: the newest so many (after ``offset``).

        A group's members appear as one run object (the group); ``ids`` may name groups, and
        a member named by its own id is listed alone. ``summary``: without windows and
        metrics (``[]``), what a listing shows. See :meth:`page` for the count.
        """
        query = RunQuery(status=status, tags=dict(tags or {}), name=name, since=since,
                         limit=limit, offset=offset)  # fmt: skip
        return self.page(query, ids=ids, summary=summary).runs

    def page(
        self, query: RunQuery, *, ids: Iterable[str] | None = None, summary: bool = False
    ) -> RunPage:
        """The run objects ``query`` selects (oldest first) and how many matched in all.

        The entries are chosen in SQL (:mod:`greentrain.store.selection`) and only theirs
        are read, one query per table for the page; ``ids``: only these runs or groups.
        """
        gone = sorted(self._reap_running())
        if ids is not None:
            runs = [r for r in self._by_ids(list(dict.fromkeys(ids)), query.since, summary)
                    if selected(r, query)]  # fmt: skip
            end = len(runs) - query.offset
            return RunPage(runs[max(end - (query.limit or end), 0) : max(end, 0)], len(runs))
        if not query.narrowed:
            chosen, total = entries(self._conn, self.version, query, gone, paged=True)
            return RunPage(self._read(chosen[::-1], summary), total)
        candidates, _ = entries(self._conn, self.version, query, gone, paged=False)
        if query.tags:
            tagged = tag_candidates(self._conn, self.version, query.tags)
            candidates = [e for e in candidates if (e.key, e.group) in tagged]
        want = (query.limit or len(candidates)) + query.offset
        step = max(want, 50)
        found: list[dict[str, Any]] = []  # newest first
        for start in range(0, len(candidates), step):
            batch = candidates[start : start + step]
            found += [r for r in self._read(batch[::-1], summary)[::-1] if selected(r, query)]
            if query.limit and len(found) >= want:
                shown = found[query.offset : want]
                return RunPage(shown[::-1], None)  # older candidates not read
        end = query.offset + query.limit if query.limit else None
        return RunPage(found[query.offset : end][::-1], len(found))

    def _by_ids(self, ids: list[str], since: float | None, summary: bool) -> list[dict[str, Any]]:
        """Run objects of ``ids`` (each a run, listed alone, or a group) started at or after
        ``since`` (unix s; a group: its first member), oldest first."""
        found = []
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            found += [
                Entry(r["id"], False, r["s"])
                for r in self._conn.query(
                    f"SELECT id, started_unix AS s FROM runs WHERE id IN ({marks})", chunk
                )
            ]
            if self.version >= 3:
                found += [Entry(r["group_id"], True, r["s"]) for r in self._conn.query(
                    f"SELECT group_id, MIN(started_unix) AS s FROM runs WHERE group_id IN"
                    f" ({marks}) GROUP BY group_id", chunk)]  # fmt: skip
        if since is not None:
            found = [e for e in found if isinstance(e.start, (int, float)) and e.start >= since]
        return self._read(found, summary)

    def _reap_running(self) -> set[str]:
        """Reap every ``running`` run whose wrapper is gone (:meth:`_reap`: its pid on this
        host, its heartbeat on another); the ids of those reaped (a read-only store still holds
        them ``running``)."""
        rows = self._conn.query("SELECT * FROM runs WHERE status = 'running'")
        cleaned = [clean_row("runs", raw)[0] for raw in rows]
        return {r["id"] for r in cleaned if r is not None and self._reap(r)["status"] != "running"}

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper is gone (:meth:`_wrapper_gone`) is reported
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

"""Which runs a listing shows, chosen in SQL: the filters, the order and the page.

A listing's unit is an *entry*: a run of its own, or a run group (its members shown as one run
object, :mod:`greentrain.record.group`). One query groups the ``runs`` table's rows into entries
(``COALESCE(group_id, id)``), computes each entry's start (its first member's) and status, keeps
those the filters select and returns one page of them, newest first, with how many matched in
all. Only then are the page's runs read whole (:mod:`greentrain.store.reader`), so a listing of
10,000 runs reads the rows of the runs it shows and no others.

What SQL decides exactly: the status (a group's by the rule of
:data:`greentrain.record.group.STATUS_ORDER`, a run whose wrapper is gone read as
``interrupted``), ``since`` (the entry's start), the page. What it narrows only (the reader
checks each run object again): the name (any member's; a group's is its lead's) and the tags
(a group's are its members' merged) -- their candidates are read in pages until the page is
full.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.record.group import STATUS_ORDER
from greentrain.record.jsonable import loads
from greentrain.record.secrets import redact_all

_CHUNK = 500  # ids per ``IN (...)`` query


@dataclass(frozen=True)
class RunQuery:
    """What a listing asks for (every field optional).

    Args:
        status: only entries of this status.
        tags: only entries with every tag ``key = value``.
        name: only entries of this name.
        since: only entries started at or after this unix time (seconds).
        limit: at most this many entries, the newest (None or 0: all).
        offset: skip this many of the newest first (the next page back).
    """

    status: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    since: float | None = None
    limit: int | None = None
    offset: int = 0

    @property
    def narrowed(self) -> bool:
        """Whether SQL only narrows the candidates (each run object is checked again)."""
        return self.name is not None or bool(self.tags)


@dataclass(frozen=True)
class Entry:
    """One listed unit: a run (``group`` False) or a run group, and its start (unix s)."""

    key: str
    group: bool
    start: float


def _status_sql(gone: Collection[str]) -> tuple[str, list[str]]:
    """SQL of an entry's status over its rows (a run's own; a group's by the group rule) and
    its parameters; the runs in ``gone`` (wrappers gone, not recorded yet) read
    ``interrupted``."""
    row, row_params = "status", []
    if gone:
        row = f"CASE WHEN id IN ({','.join('?' * len(gone))}) THEN 'interrupted' ELSE status END"
        row_params = list(gone)
    cases, params = [], list(row_params)  # MIN({row}) first
    for status in STATUS_ORDER:
        cases.append(f"WHEN SUM(CASE WHEN {row} = ? THEN 1 ELSE 0 END) > 0 THEN ?")
        params += [*row_params, status, status]
    # a run of its own: its status (MIN over its one row); a group: the first status of the
    # order any member has, else finished
    return f"CASE WHEN MAX(g) = 0 THEN MIN({row}) {' '.join(cases)} ELSE 'finished' END", params


def group_column(version: int) -> str:
    """The ``runs`` column of a run's group in a store of schema ``version`` (NULL before v3)."""
    return "group_id" if version >= 3 else "NULL"


def entries(
    conn: Any, version: int, query: RunQuery, gone: Collection[str], *, paged: bool
) -> tuple[list[Entry], int]:
    """The entries ``query`` selects, newest first, and how many matched in all.

    ``paged``: apply the query's limit and offset in SQL (False: every candidate, for a
    narrowed query the reader pages itself). ``conn``: the store's connection; ``version``:
    its schema version.
    """
    gid = group_column(version)
    status_sql, status_params = _status_sql(gone)
    having, params = [], []
    if query.status is not None:
        having.append(f"({status_sql}) = ?")
        params += [*status_params, query.status]
    if query.since is not None:
        having.append("MIN(started_unix) >= ?")
        params.append(float(query.since))
    if query.name is not None:
        having.append("SUM(CASE WHEN name = ? THEN 1 ELSE 0 END) > 0")
        params.append(query.name)
    sql = (
        "SELECT k, MAX(g) AS g, MIN(started_unix) AS s, COUNT(*) OVER () AS total FROM "
        f"(SELECT COALESCE({gid}, id) AS k, CASE WHEN {gid} IS NULL THEN 0 ELSE 1 END"
        " AS g, id, status, name, started_unix FROM runs) e"
        " GROUP BY k, CASE WHEN g = 0 THEN id ELSE NULL END"
    )
    if having:
        sql += " HAVING " + " AND ".join(having)
    sql += " ORDER BY s DESC, k DESC"  # newest first: the reverse of (start, key)
    page_params: list = []
    page = ""
    if paged and (query.limit or query.offset):
        page = " LIMIT ? OFFSET ?"
        no_limit = -1 if conn.kind == "sqlite" else None  # PostgreSQL: LIMIT NULL is no limit
        page_params = [int(query.limit) if query.limit else no_limit, int(query.offset)]
    rows = conn.query(sql + page, params + page_params) if page else conn.query(sql, params)
    if rows:
        total = int(rows[0]["total"])
    elif page:  # an offset past the end: count what matched
        counted = conn.query(f"SELECT COUNT(*) AS n FROM ({sql}) c", params)
        total = int(counted[0]["n"]) if counted else 0
    else:
        total = 0
    return [Entry(r["k"], bool(r["g"]), _start(r["s"])) for r in rows], total


def _start(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def chunks(ids: Sequence[str]) -> list[list[str]]:
    """``ids`` in pieces small enough for one ``IN (...)`` each."""
    return [list(ids[i : i + _CHUNK]) for i in range(0, len(ids), _CHUNK)]


@dataclass
class RunPage:
    """A page of a listing: its run objects (oldest first) and how many entries matched in
    all (None when only the page was read: a narrowed query stopped when the page was full)."""

    runs: list[dict[str, Any]]
    total: int | None


def tag_candidates(conn: Any, version: int, tags: Mapping[str, str]) -> set[tuple[str, bool]]:
    """The entries ``(key, group)`` with a member holding every tag of ``tags`` (its tags as a
    run object shows them, secrets masked): a superset of the entries with those tags (a
    group's are its members' merged, the lead's first). One narrow read of the ``runs`` table;
    the tags are JSON text, read the same way on both backends."""
    want = {str(k): str(v) for k, v in tags.items()}
    out = set()
    for r in conn.query(f"SELECT id, {group_column(version)} AS group_id, tags FROM runs"):
        own = redact_all(loads(r["tags"], {}))
        if all(own.get(k) == v for k, v in want.items()):
            out.add((r["group_id"], True) if r["group_id"] is not None else (r["id"], False))
    return out


def selected(run: Mapping[str, Any], query: RunQuery) -> bool:
    """Whether a run object passes the query's status, name and tags (the exact check; the
    start is checked in SQL)."""
    if query.status is not None and run["status"] != query.status:
        return False
    if query.name is not None and run["name"] != query.name:
        return False
    want = {str(k): str(v) for k, v in query.tags.items()}
    got = run.get("tags")
    return not want or (isinstance(got, Mapping) and all(got.get(k) == v for k, v in want.items()))

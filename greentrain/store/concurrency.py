"""Reading what the split among concurrent runs needs (:mod:`greentrain.record.split`).

Only the runs of the hosts of the runs being read, and of their time span, are looked at
(``runs_host`` index), their overlaps are found in one sweep
(:func:`greentrain.record.split.overlapping`), and only the runs that
overlapped a run of another party have their samples read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.cells import clean_row
from greentrain.record.jsonable import loads
from greentrain.record.nesting import ancestor_chain
from greentrain.record.split import Span, Timeline, attribute, overlapping
from greentrain.store.selection import chunks

# (table, ids, order) -> each run's cleaned rows of that table
ReadChildren = Callable[[str, list[str], str], dict[str, list[dict]]]


COLUMNS = "id, host, status, started_unix, duration_s"


def _wanted(conn: Any, ids: Sequence[str], group_col: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for chunk in chunks(list(ids)):
        marks = ",".join("?" * len(chunk))
        rows += conn.query(f"SELECT {COLUMNS}, {group_col} FROM runs WHERE id IN ({marks})",
                           chunk)  # fmt: skip
    return rows


def _rows_on(
    conn: Any, hosts: list[Any], group_col: str, start: float, end: float
) -> list[dict[str, Any]]:
    """The span columns of every run on ``hosts`` (a NULL host is a host too) that may overlap
    ``[start, end]``: started before its end, and not ended before its start. A store whose
    columns were changed by hand (a duration stored as text in PostgreSQL) cannot compute the
    end in SQL: every run of the hosts is read instead."""
    bound = " AND started_unix < ? AND (duration_s IS NULL OR started_unix + duration_s > ?)"
    try:
        return _on_hosts(conn, hosts, group_col, bound, [end, start])
    except StoreError:
        return _on_hosts(conn, hosts, group_col, "", [])


def _on_hosts(
    conn: Any, hosts: list[Any], group_col: str, bound: str, params: list
) -> list[dict[str, Any]]:
    columns = f"{COLUMNS}, {group_col}"
    named = [h for h in hosts if h is not None]
    rows: list[dict[str, Any]] = []
    for chunk in chunks(named):
        marks = ",".join("?" * len(chunk))
        rows += conn.query(f"SELECT {columns} FROM runs WHERE host IN ({marks}){bound}",
                           [*chunk, *params])  # fmt: skip
    if None in hosts:
        rows += conn.query(f"SELECT {columns} FROM runs WHERE host IS NULL{bound}", params)
    return rows


def spans_of(
    rows: Sequence[Mapping[str, Any]], parents: Mapping[str, str], now: float
) -> dict[str, Span]:
    """Each run's :class:`~greentrain.record.split.Span` from its ``runs`` columns.

    A run whose start cannot be read overlaps nothing; one that ended without a readable
    duration is taken to have lasted no time (it shares nothing rather than everything); one
    still going lasts until ``now``. A nested run shares its outermost ancestor's party.
    """
    cleaned = [clean_row("runs", r)[0] for r in rows]
    kept = [r for r in cleaned if r is not None and r["started_unix"] is not None]
    party = {r["id"]: r["group_id"] or r["id"] for r in kept}
    out = {}
    for r in kept:
        duration = r["duration_s"]
        if duration is None and r["status"] != "running":
            duration = 0.0
        end = r["started_unix"] + duration if duration is not None else now
        outermost = (ancestor_chain(r["id"], parents) or [r["id"]])[-1]
        out[r["id"]] = Span(r["host"], r["started_unix"], end, party.get(outermost, r["id"]))
    return out


def concurrent_splits(
    conn: Any,
    version: int,
    ids: Sequence[str],
    parents: Mapping[str, str],
    read_children: ReadChildren,
) -> dict[str, dict]:
    """Each of ``ids``' share of the machine-scope energy it shared with concurrent runs on its
    host (:func:`greentrain.record.split.attribute`; a group's runs share as one party); runs
    that overlapped no run of another party get nothing."""
    if version < 2 or not ids:
        return {}
    group_col = "group_id" if version >= 3 else "NULL AS group_id"
    now = time.time()
    wanted = spans_of(_wanted(conn, ids, group_col), parents, now)
    if not wanted:
        return {}
    hosts = sorted({s.host for s in wanted.values()}, key=str)
    start = min(s.start for s in wanted.values())
    end = max(s.end for s in wanted.values())
    spans = spans_of(_rows_on(conn, hosts, group_col, start, end), parents, now)
    overlaps = overlapping(spans, ids)
    if not overlaps:
        return {}
    needed = sorted(set(overlaps) | {o for others in overlaps.values() for o in others})
    timelines = {
        run_id: Timeline.from_rows(
            run_id, [dict(r, readings=loads(r["readings"], [])) for r in rows],
            party=spans[run_id].party,
        )
        for run_id, rows in read_children("samples", needed, "seq").items()
    }  # fmt: skip
    return {
        run_id: attribute(timelines[run_id], [timelines[o] for o in others])
        for run_id, others in overlaps.items()
    }

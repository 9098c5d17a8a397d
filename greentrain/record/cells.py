"""Store cells of the wrong type: read as unreadable, named with the run and the field.

A store edited by hand, written by another tool or damaged in part can hold text where a number
belongs (``energy.energy_j = 'lots'``, ``runs.duration_s = 'long'``), a number where text
belongs, or NULL where the schema says NOT NULL. :func:`clean_row` checks each cell a reader
computes with against its column's type before anything uses it: a cell that fails becomes
None (never 0) and is noted as ``{"field": "energy.energy_j", "value": "'lots'"}`` in the run
object's ``unreadable`` list; the rest of the row, the run and the listing are read as usual.
An energy row whose ``energy_j`` is unreadable carries no figure and is left out of the ranking
(the note says which meter, domain and device it was).

Pure functions: the store reads the rows, this module decides which cells can be used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# table -> column -> expected kind: "real" (a finite number), "int" (an integer), "text"
COLUMNS: dict[str, dict[str, str]] = {
    "runs": {
        "id": "text", "name": "text", "status": "text", "exit_code": "int",
        "started_at": "text", "started_unix": "real", "ended_at": "text", "duration_s": "real",
        "cwd": "text", "host": "text", "pid": "int", "pid_started": "real",
        "group_id": "text", "group_rank": "int", "parent_id": "text",
        "launch_id": "text", "group_size": "int", "global_rank": "int",
        "heartbeat_unix": "real", "heartbeat_s": "real",
    },
    "energy": {
        "window_idx": "int", "meter": "text", "domain": "text", "device": "text",
        "method": "text", "energy_j": "real",
    },
    "windows": {
        "idx": "int", "name": "text", "started_at": "text", "ended_at": "text",
        "duration_s": "real",
    },
    "metrics": {"step": "int", "window": "text", "time_s": "real"},
    "meters": {"meter": "text", "available": "int", "reason": "text", "fix": "text",
               "error": "text"},
    "samples": {"seq": "int", "t": "real", "cpu_s": "real"},
}  # fmt: skip

# cells a row means nothing without: the row is dropped (and noted) when one is unreadable
REQUIRED: dict[str, tuple[str, ...]] = {
    "energy": ("window_idx", "meter", "domain", "device", "energy_j"),
    "windows": ("idx",),
    "samples": ("seq", "t"),
    "meters": ("meter",),
}

# cells NULL is a valid value for (the schema allows it); elsewhere NULL is unreadable
NULLABLE = frozenset(
    {
        "runs.exit_code", "runs.ended_at", "runs.duration_s", "runs.cwd", "runs.host",
        "runs.pid", "runs.pid_started", "runs.group_id", "runs.group_rank", "runs.parent_id",
        "runs.launch_id", "runs.group_size", "runs.global_rank", "runs.heartbeat_unix",
        "runs.heartbeat_s",
        "windows.ended_at", "windows.duration_s", "metrics.step", "metrics.window",
        "meters.error", "samples.cpu_s",
    }
)  # fmt: skip


def _fits(value: Any, kind: str) -> bool:
    kind_of = type(value)
    if kind == "text":
        return kind_of is str or isinstance(value, str)
    if kind_of is int or (kind_of is float and kind == "real" and math.isfinite(value)):
        return True
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float)) and math.isfinite(float(value))


def _plan(table: str) -> tuple[tuple[str, str, bool, bool], ...]:
    """(column, kind, may be NULL, row needs it) for each checked column of ``table``."""
    return tuple(
        (column, kind, f"{table}.{column}" in NULLABLE, column in REQUIRED.get(table, ()))
        for column, kind in COLUMNS.get(table, {}).items()
    )


_PLANS = {table: _plan(table) for table in COLUMNS}  # constant, computed once
_ABSENT = object()  # a column the row does not have (an older schema): nothing to check


def _where(table: str, row: Mapping[str, Any]) -> str:
    """Which row of a run a note is about (an energy row's meter, domain, device ...)."""
    if table == "energy":
        parts = [row.get(k) for k in ("window_idx", "meter", "domain", "device")]
        return " (" + " ".join(str(p) for p in parts) + ")"
    for key in ("idx", "seq", "meter"):
        if key in row and key in COLUMNS.get(table, {}):
            return f" ({key} {row.get(key)})"
    return ""


def clean_row(
    table: str, row: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """``row`` with each cell of the wrong type (or a NULL the schema forbids) set to None, and
    the notes saying which; None instead of the row when a cell it cannot do without is
    unreadable. Integers stored as floats (``3.0``) come back as ints. A row whose cells are
    all fine is returned as it is (no copy: readers go through every metrics row)."""
    out: dict[str, Any] | None = None
    notes: list[dict[str, str]] = []
    dropped = False
    for column, kind, nullable, required in _PLANS.get(table, ()):
        value = row.get(column, _ABSENT)
        if value is _ABSENT or (value is None and nullable) or _fits(value, kind):
            if kind == "int" and type(value) is float:
                out = dict(row) if out is None else out
                out[column] = int(value)
            continue
        out = dict(row) if out is None else out
        out[column] = None
        notes.append({"field": f"{table}.{column}{_where(table, row)}", "value": repr(value)})
        dropped = dropped or required
    if dropped:
        return None, notes
    if out is None:
        out = row if isinstance(row, dict) else dict(row)
    return out, notes

"""What a group's wrappers read of each other while they run (issue 24): the launches that
already use a group id, and the group's spend so far for a group budget.

:class:`GroupReads` is part of :class:`~greentrain.store.reader.StoreReader`; both queries read
the ``runs`` rows of one group (indexed by ``runs_group``) and, for the spend, the other
members' whole-run energy rows, which every member's samples keep current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from greentrain.record.ranking import best_figures, candidates_from_rows, total_j
from greentrain.record.vocabulary import RUN_SCOPE
from greentrain.store.connection import Connection


@dataclass
class GroupSpend:
    """The other members' spend: joules so far (their best figures summed; None when none has
    a figure yet), how many members that is, and those whose budget has tripped (a ``budget
    reached`` event stored, or the status ``budget``)."""

    energy_j: float | None
    members: int
    stopped: list[str] = field(default_factory=list)


class GroupReads:
    """The group queries of a store reader (see the module docstring)."""

    _conn: Connection

    def statuses(self, ids: list[str]) -> dict[str, str]:
        """Each run's stored status (run id -> status), as stored: no run is reaped."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn.query(f"SELECT id, status FROM runs WHERE id IN ({marks})", ids)
        return {r["id"]: r["status"] for r in rows}

    def group_launch_rows(self, group_id: str) -> list[dict[str, Any]]:
        """The ``runs`` rows (id, group_id, launch_id, status, started_unix, group_size) of
        ``group_id`` and of its later launches ``group_id#k``."""
        escaped = group_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._conn.query(
            "SELECT id, group_id, launch_id, status, started_unix, group_size FROM runs"
            " WHERE group_id = ? OR group_id LIKE ? ESCAPE '\\'",
            (group_id, escaped + "#%"),
        )

    def group_spend(self, group_id: str, exclude: str) -> GroupSpend:
        """The spend of ``group_id``'s members other than run ``exclude`` (this wrapper's)."""
        rows = self._conn.query(
            "SELECT id, status, CASE WHEN events LIKE ? THEN 1 ELSE 0 END AS tripped FROM runs"
            " WHERE group_id = ? AND id <> ?",
            ('%"budget reached"%', group_id, exclude),
        )
        if not rows:
            return GroupSpend(None, 0)
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        energy = self._conn.query(
            "SELECT run_id, meter, domain, device, method, energy_j, detail FROM energy"
            f" WHERE window_idx = ? AND run_id IN ({marks})",
            (RUN_SCOPE, *ids),
        )
        per_run: dict[str, list[dict[str, Any]]] = {}
        for row in energy:
            per_run.setdefault(row["run_id"], []).append(row)
        totals = [total_j(best_figures(candidates_from_rows(r))) for r in per_run.values()]
        known = [t for t in totals if t is not None]
        return GroupSpend(
            energy_j=sum(known) if known else None,
            members=len(rows),
            stopped=[r["id"] for r in rows if r["status"] == "budget" or r["tripped"]],
        )

"""What a live forecast reads of a run's finished *sibling* runs (issue 22): candidates chosen
in SQL, then the epoch windows of those that match.

:class:`SiblingReads` is part of :class:`~greentrain.store.reader.StoreReader`. The match rule
itself (:func:`greentrain.record.siblings.sibling_key`: the same command and config but for
seed, name, tags and store) is decided by the caller on each candidate; SQL only narrows:

* :meth:`SiblingReads.sibling_candidates`: one page of the finished runs (single runs, not the
  members of a multi-node group) that ended at or before a given instant, newest first, whose
  stored command starts with the given words -- the ``runs`` row's ``id``, ``command`` and
  ``config`` only, no child table;
* :meth:`SiblingReads.epoch_runs`: the run objects of the chosen ids with their windows and
  energy but without their metrics (a run's logged metrics can be its largest part).

A store of 10,000 runs is read a page at a time and only the siblings' windows are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greentrain.record.jsonable import dumps, loads
from greentrain.store.rows import RunRows
from greentrain.store.selection import Entry

PAGE = 500  # candidate rows per query


def command_like(words: Sequence[str]) -> str | None:
    """The ``LIKE`` pattern of a stored command (JSON text) that starts with ``words`` (None
    for no words: every command)."""
    if not words:
        return None
    prefix = dumps(list(words))[:-1]  # '["python", "train.py"' without its closing bracket
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class SiblingReads(RunRows):
    """The sibling queries of a store reader (see the module docstring)."""

    def sibling_candidates(
        self,
        ended_by: str,
        *,
        command_start: Sequence[str] = (),
        exclude: str = "",
        offset: int = 0,
        limit: int = PAGE,
    ) -> list[dict[str, Any]]:
        """One page, newest first, of the finished single runs other than ``exclude`` that
        ended at or before ``ended_by`` (ISO-8601 UTC, as stored: such times compare as text)
        and whose command starts with ``command_start``: ``{"id", "command", "config"}`` each
        (command a list, config a dict; an unreadable cell reads empty)."""
        sql = ("SELECT id, command, config FROM runs WHERE status = 'finished'"
               " AND ended_at IS NOT NULL AND ended_at <= ? AND id <> ?")  # fmt: skip
        params: list[Any] = [ended_by, exclude]
        if self.version >= 3:
            sql += " AND group_id IS NULL"
        pattern = command_like([str(w) for w in command_start])
        if pattern is not None:
            sql += " AND command LIKE ? ESCAPE '\\'"
            params.append(pattern)
        sql += " ORDER BY started_unix DESC, id LIMIT ? OFFSET ?"
        params += [int(limit), int(offset)]
        return [
            {"id": r["id"], "command": loads(r["command"], []), "config": loads(r["config"], {})}
            for r in self._conn.query(sql, params)
        ]

    def epoch_runs(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The run objects of ``ids`` (single runs), oldest first, with their windows and
        energy but no metrics (``[]``)."""
        return self._read([Entry(i, False, 0.0) for i in ids], False, metrics=False)

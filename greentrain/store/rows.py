"""A page's rows -> run objects: one query per table for the runs of the page (``IN (...)``
in chunks), a group's members joined into the group's object, nested runs linked, concurrent
runs' machine energy split. :class:`RunRows` is the base of
:class:`~greentrain.store.reader.StoreReader`, which chooses the entries."""

from __future__ import annotations

from typing import Any

from greentrain.record.assemble import assemble_run
from greentrain.record.cells import clean_row
from greentrain.record.group import assemble_group, member_of
from greentrain.record.nesting import ancestor_chain
from greentrain.record.vocabulary import RUN_SCOPE
from greentrain.store.concurrency import concurrent_splits
from greentrain.store.connection import Connection
from greentrain.store.selection import Entry, chunks


class RunRows:
    """Reading the rows of chosen entries (see the module docstring); ``_conn`` and
    ``version`` are the store's connection and schema version."""

    _conn: Connection
    version: int

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as read (the reader reports a dead wrapper's run ``interrupted``)."""
        return row

    def _read(
        self, chosen: list[Entry], summary: bool, metrics: bool = True
    ) -> list[dict[str, Any]]:
        """The run objects of ``chosen`` entries, oldest first: their rows, one query per
        table (``IN (...)`` in chunks); ``metrics`` False: without their metrics."""
        singles = [e.key for e in chosen if not e.group]
        groups = [e.key for e in chosen if e.group]
        rows_by_id: dict[str, dict[str, Any]] = {}
        notes: dict[str, list[dict[str, str]]] = {}
        for column, keys in (("id", singles), ("group_id", groups)):
            for chunk in chunks(keys):
                marks = ",".join("?" * len(chunk))
                for raw in self._conn.query(f"SELECT * FROM runs WHERE {column} IN ({marks})",
                                            chunk):  # fmt: skip
                    if raw["id"] in rows_by_id:
                        continue
                    row, found = clean_row("runs", raw)
                    notes[raw["id"]] = list(found)
                    rows_by_id[raw["id"]] = self._reap(row)  # type: ignore[arg-type]
        rows = sorted(rows_by_id.values(), key=lambda r: (r["started_unix"] or 0.0, r["id"]))
        objects = self._objects(rows, set(singles), set(groups), notes, summary, metrics)
        self._link_nested(objects)
        return objects

    def _objects(
        self,
        rows: list[dict[str, Any]],
        singles: set[str],
        groups: set[str],
        notes: dict[str, list[dict]],
        summary: bool,
        metrics: bool = True,
    ) -> list[dict[str, Any]]:
        """Run objects of ``rows``: the runs in ``singles`` alone, the members of ``groups``
        joined into their group's object, oldest first. ``notes``: the cells that could not
        be read, per run id (:mod:`greentrain.record.cells`), completed here with the child
        tables' and put in each run object's ``unreadable`` list."""
        runs, energy = self._assemble(rows, notes, summary, metrics)
        for row, run in zip(rows, runs, strict=True):
            run["unreadable"] = notes.get(row["id"], [])
        out: list[tuple[float, str, dict]] = []
        members: dict[str, list] = {}
        for row, run in zip(rows, runs, strict=True):
            group = row.get("group_id")
            if group is not None and group in groups:
                members.setdefault(group, []).append(member_of(run, row, energy[row["id"]]))
            if row["id"] in singles:
                out.append((row["started_unix"] or 0.0, row["id"], run))
        for group, parts in members.items():
            start = min(m.started_unix for m in parts)
            whole = assemble_group(group, parts)
            whole["unreadable"] = [n for m in parts for n in m.run["unreadable"]]
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

    def _children(
        self,
        table: str,
        ids: list[str],
        order: str,
        notes: dict[str, list] | None = None,
        where: str = "",
    ) -> dict[str, list[dict]]:
        """Each run's rows of ``table`` (``where``: an extra condition), cells of the wrong
        type cleared (and noted in ``notes``, per run id) and rows without a cell they need
        left out."""
        out: dict[str, list[dict]] = {i: [] for i in ids}
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in self._conn.query(
                f"SELECT * FROM {table} WHERE run_id IN ({marks}){where} ORDER BY {order}", chunk
            ):
                row, found = clean_row(table, r)
                if found and notes is not None:
                    notes.setdefault(r["run_id"], []).extend(found)
                if row is not None:
                    out[r["run_id"]].append(row)
        return out

    def _assemble(
        self,
        rows: list[dict[str, Any]],
        notes: dict[str, list[dict]],
        summary: bool,
        with_metrics: bool = True,
    ) -> tuple[list[dict], dict[str, list[dict]]]:
        """Each row's run object and energy rows; ``summary``: the whole-run energy only, no
        windows or metrics; ``with_metrics`` False: no metrics."""
        ids = [r["id"] for r in rows]
        order = "window_idx, meter, domain, device"
        if summary:
            energy = self._children("energy", ids, order, notes, f" AND window_idx = {RUN_SCOPE}")
            windows = metrics = {i: [] for i in ids}
        else:
            energy = self._children("energy", ids, order, notes)
            windows = self._children("windows", ids, "idx", notes)
            metrics = (self._children("metrics", ids, "seq", notes) if with_metrics
                       else {i: [] for i in ids})  # fmt: skip
        meters = self._children("meters", ids, "meter", notes)
        splits = concurrent_splits(self._conn, self.version, ids, self._parents(),
                                   lambda t, i, o: self._children(t, i, o))  # fmt: skip
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

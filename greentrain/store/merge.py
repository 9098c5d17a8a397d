"""Several stores into one: per-node SQLite files of a cluster without a shared database.

``greentrain store merge A.db B.db ... --into C.db`` (or ``--into postgresql://...``) copies
every run with all its rows (energy, windows, metrics, meters, samples) into the target, in one
transaction. The runs of one group recorded on different nodes (each node's wrapper writing its
own file, ``--group ID``) meet again in the target, where readers show them as one run.

Nothing is lost and nothing is counted twice:

* every check comes before the first write; a refused merge writes nothing;
* a run found twice with the same content (a node file merged again, a run already in the
  target) is copied once and reported as already there;
* a run id found twice with different content is a conflict: refused, naming both places;
* journals still waiting on this machine for a source or the target
  (:mod:`greentrain.store.journal`) are landed first, idempotently, as every writing command
  does; a run still ``running`` in a source is refused until it is complete (the message says
  how), or, with ``skip_running`` (``--skip-running``), left out and listed in the report (a
  lost node's run can also be marked by hand: ``greentrain store mark RUN --interrupted``);
* the target may not be one of the sources.

The metrics' sequence numbers are the target's own (their order within a run is kept).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import ConfigError
from greentrain.store.backend import connect
from greentrain.store.connection import Connection, Tx
from greentrain.store.journal import pending_journals
from greentrain.store.location import StoreLocation, locate
from greentrain.store.schema import CHILD_TABLES, check_schema
from greentrain.store.writer import Store

_CHUNK = 500
_ORDER = {"energy": "window_idx, meter, domain, device", "windows": "idx", "metrics": "seq",
          "meters": "meter", "samples": "seq"}  # fmt: skip


@dataclass
class Bundle:
    """One run's rows, from one store."""

    source: str
    row: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]

    def fingerprint(self) -> str:
        """The run's content (all columns but the metrics' sequence numbers), for comparing
        copies of one run. Columns missing from an older store count as their defaults."""
        row = {k: v for k, v in self.row.items() if v is not None and v not in ("{}", "[]")}
        kids = {
            t: sorted(json.dumps({k: v for k, v in r.items() if k != "seq" or t != "metrics"},
                                 sort_keys=True, default=str) for r in rows)
            for t, rows in self.children.items()
        }  # fmt: skip
        return json.dumps({"row": row, "children": kids}, sort_keys=True, default=str)


@dataclass
class MergeReport:
    """What a merge did: runs added, runs found already there, and the groups in them."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)  # group id -> members added
    skipped: list[str] = field(default_factory=list)  # running runs left out (skip_running)


def _same_place(a: StoreLocation, b: StoreLocation) -> bool:
    if a.path is not None and b.path is not None:
        return os.path.abspath(a.path) == os.path.abspath(b.path)
    return a.shown == b.shown


def read_bundles(
    conn: Connection, source: str, ids: Sequence[str] | None = None
) -> dict[str, Bundle]:
    """The runs of an open store (all, or those of ``ids`` that it has), with their rows."""
    tables = conn.tables()
    if ids is None:
        where, chunks = "", [[]]
    else:
        ids = list(ids)
        chunks = [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
    out: dict[str, Bundle] = {}
    for chunk in chunks:
        if ids is not None:
            if not chunk:
                continue
            where = f" WHERE {{col}} IN ({','.join('?' * len(chunk))})"
        runs = conn.query("SELECT * FROM runs" + where.format(col="id") + " ORDER BY id", chunk)
        out.update({r["id"]: Bundle(source, r, {t: [] for t in CHILD_TABLES}) for r in runs})
        for table in CHILD_TABLES:
            if table not in tables:
                continue
            sql = f"SELECT * FROM {table}{where.format(col='run_id')} ORDER BY run_id, "
            for row in conn.query(sql + _ORDER[table], chunk):
                if row["run_id"] in out:
                    out[row["run_id"]].children[table].append(row)
    return out


def _open_source(location: StoreLocation) -> Connection:
    if pending_journals(location):
        Store(location, create=False).close()  # lands them (claimed, keyed: never twice)
    conn = connect(location, read_only=True, create=False)
    try:
        check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def collect(sources: Sequence[str], skip_running: list[str] | None = None) -> dict[str, Bundle]:
    """The runs of every source, each once; ConfigError for a conflict or a running run
    (unless ``skip_running`` is a list: a running run's id is appended to it instead)."""
    found: dict[str, Bundle] = {}
    for source in sources:
        location = locate(source)
        conn = _open_source(location)
        try:
            bundles = read_bundles(conn, location.shown)
        finally:
            conn.close()
        for run_id, bundle in bundles.items():
            if bundle.row["status"] == "running":
                if skip_running is not None:
                    skip_running.append(run_id)
                    continue
                raise ConfigError(
                    f"run {run_id} in {location.shown} is still running (or its node died: "
                    f"`greentrain store mark {run_id} --interrupted --store {location.shown}` "
                    "marks it); merge once it has ended, or pass --skip-running"
                )
            earlier = found.get(run_id)
            if earlier is not None and earlier.fingerprint() != bundle.fingerprint():
                raise ConfigError(
                    f"run {run_id} is in {earlier.source} and in {location.shown} with different "
                    "content; merge refuses conflicting duplicates (nothing was written)"
                )
            found.setdefault(run_id, bundle)
    return found


def _insert(tx: Tx, table: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``'s ``columns``; a column a row lacks (an older store)
    takes the target's default."""
    batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        batches.setdefault(tuple(c for c in columns if c in row), []).append(row)
    for cols, batch in batches.items():
        quoted = ", ".join(f'"{c}"' for c in cols)
        marks = ", ".join("?" * len(cols))
        tx.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})",
                       [[r[c] for c in cols] for r in batch])  # fmt: skip


def merge_stores(
    sources: Sequence[str], into: str | StoreLocation, *, skip_running: bool = False
) -> MergeReport:
    """Merge ``sources`` (paths or URLs) into ``into`` (created if missing); see the module
    docstring. ``skip_running``: leave running runs out (listed in the report's ``skipped``)
    instead of refusing. Raises ConfigError (refused, nothing written) or StoreError."""
    if not sources:
        raise ConfigError("give the stores to merge: greentrain store merge A.db B.db --into C.db")
    target = locate(into)
    for source in sources:
        if _same_place(locate(source), target):
            raise ConfigError(f"{target.shown} is both a source and the target; merge into a "
                              "new store (--into)")  # fmt: skip
    report = MergeReport()
    bundles = collect(sources, report.skipped if skip_running else None)
    with Store(target) as st:
        conn = st._conn  # the store's own connection: one transaction for the whole merge
        existing = read_bundles(conn, target.shown, list(bundles)) if bundles else {}
        todo = []
        for run_id, bundle in bundles.items():
            there = existing.get(run_id)
            if there is None:
                todo.append(bundle)
            elif there.fingerprint() == bundle.fingerprint():
                report.already.append(run_id)
            else:
                raise ConfigError(
                    f"run {run_id} of {bundle.source} is already in {target.shown} with different "
                    "content; merge refuses conflicting duplicates (nothing was written)"
                )
        columns = {t: conn.columns(t) for t in ("runs", *CHILD_TABLES)}
        columns["metrics"] = [c for c in columns["metrics"] if c != "seq"]

        def copy(tx: Tx) -> None:
            _insert(tx, "runs", columns["runs"], [b.row for b in todo])
            for table in CHILD_TABLES:
                rows = [r for b in todo for r in b.children[table]]
                _insert(tx, table, columns[table], rows)

        conn.write(copy)
        for bundle in todo:
            report.added.append(bundle.row["id"])
            group = bundle.row.get("group_id")
            if group is not None:
                report.groups[group] = report.groups.get(group, 0) + 1
    return report

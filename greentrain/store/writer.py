"""The store's writes: every write is a typed :mod:`greentrain.store.ops` value, applied by
:meth:`Store.write` (one write, one transaction) or, for a run's journal, by
:meth:`Store.apply_entries` / :meth:`Store.land`, each entry exactly once: its unique key
``(run_id, n)`` goes into the ``journal_applied`` table in the same transaction as its rows
(``INSERT ... ON CONFLICT DO NOTHING``; an entry whose key is there already is skipped), so
applying a journal twice, from two processes at once, or again after a crash mid-apply changes
nothing. :meth:`Store.land` is the one landing routine of the wrapper's writer thread,
``greentrain store sync``, every writing open, the watchdog and merge.

Recovery: a run whose wrapper died on this host (its pid gone, no journal of it waiting here),
or whose heartbeat stopped on another host (``node lost``),
is marked ``interrupted`` by the next reader that finds it (:meth:`Store._reap`), ended at its
last sample, whose energy the record keeps; a run whose journal still waits is left for
``greentrain store sync``, as its end may be in the journal. :meth:`Store.replaced` and
:meth:`Store.save_copy` let a wrapper notice its store file vanished and write everything it
still holds to a new file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import greentrain.store.ops as ops
from greentrain.errors import StoreBusy, StoreError
from greentrain.record.text import storable
from greentrain.store.connection import one_line
from greentrain.store.journal import CLAIMED, claim, pending_journals, read_journal
from greentrain.store.liveness import lost_event
from greentrain.store.reader import StoreReader
from greentrain.store.schema import CHILD_TABLES, KEY_TABLE


class StorableTx:
    """A transaction whose plain text parameters (a name, a working directory) pass through
    :func:`greentrain.record.text.storable` on their way in: text that is not UTF-8 (a path
    the system gave as bytes) is stored escaped and marked, never refused. JSON columns are
    made storable by :func:`greentrain.record.jsonable.to_jsonable` already."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        return self._tx.execute(sql, _storable(params))

    def executemany(self, sql: str, rows: list) -> Any:
        return self._tx.executemany(sql, [_storable(row) for row in rows])


def _storable(params: tuple | list) -> list:
    return [storable(p) if isinstance(p, str) else p for p in params]


@dataclass
class Applied:
    """What applying journal entries did: entries stored now, entries found already there
    (applied before, by this process or another), and one line per entry the store refused
    for good (not stored; its journal keeps it)."""

    stored: int = 0
    already: int = 0
    refused: list[str] = field(default_factory=list)

    def add(self, other: Applied) -> None:
        self.stored += other.stored
        self.already += other.already
        self.refused += other.refused


_log = logging.getLogger("greentrain.store")
APPLY_BATCH = 200  # journal entries per transaction when a journal is synced
OPEN_SYNC_PATIENCE_S = 5.0  # how long opening a store waits for it to land waiting journals


@dataclass
class SyncReport(Applied):
    """What :meth:`Store.sync_journals` did: the entries' counts (:class:`Applied`), journals
    landed whole (and deleted), torn entries skipped (one line each), and journals left
    waiting (one line each: in use, or the store did not take them)."""

    journals: int = 0
    torn: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


class Store(StoreReader):
    """The one reader/writer of run records: an SQLite file in WAL mode, or a PostgreSQL
    database (a ``postgresql://`` URL).

    Default: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``. Several processes (and, with
    PostgreSQL, machines) may write one store at once, and nothing is lost. See
    :class:`StoreReader` for the arguments.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
        sync: bool = True,
    ):
        super().__init__(path, read_only=read_only, create=create)
        if sync and not read_only:
            with self.patience(OPEN_SYNC_PATIENCE_S):  # a busy store delays no command long
                report = self.sync_journals()
            for line in report.torn:
                _log.warning("greentrain: journal %s", line)
            if report.journals:
                _log.info("greentrain: %d pending journals landed in %s (%d entries)",
                          report.journals, self.path, report.stored)  # fmt: skip

    def __enter__(self) -> Store:
        return self

    def sync_journals(self) -> SyncReport:
        """Land every journal waiting on this machine for this store that no live process
        holds: claimed (:func:`~greentrain.store.journal.claim`), applied idempotently, then
        deleted. A store that stays busy leaves the journal (and the rest) for later; one that
        refuses an entry for good leaves it as ``...failed``."""
        report = SyncReport()
        for path in pending_journals(self.location):
            with claim(path) as claimed:
                if claimed is None:
                    report.kept.append(f"{path}: in use by its run or another importer")
                    continue
                journal = read_journal(claimed)
                report.torn += journal.torn
                try:
                    done = self.land(journal.entries)
                except StoreBusy as err:
                    report.kept.append(f"{claimed}: {err}")
                    break
                report.add(done)
                if done.refused:
                    failed = claimed.with_name(claimed.name.split(CLAIMED)[0] + ".failed")
                    claimed.rename(failed)
                    report.kept.append(f"{failed}: the store refused {'; '.join(done.refused)}")
                else:
                    claimed.unlink()
                    report.journals += 1
        return report

    def write(self, write: ops.Write) -> None:
        """Apply one typed write in its own transaction (no journal key)."""
        self._conn.write(lambda tx: write.run(StorableTx(tx), self._conn))

    def apply_entries(self, entries: Sequence[tuple[int, ops.Write]]) -> Applied:
        """Apply journal entries ``(n, write)`` in one transaction, each exactly once (see the
        module docstring); what was stored now and what was there already."""

        def run(tx: Any) -> Applied:
            done = Applied()
            for n, write in entries:
                cur = tx.execute(
                    f"INSERT INTO {KEY_TABLE} (run_id, n) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (write.run_id, n),
                )
                if cur.rowcount == 0:
                    done.already += 1
                    continue
                write.run(StorableTx(tx), self._conn)
                done.stored += 1
            return done

        return self._conn.write(run) if entries else Applied()

    def land(self, entries: Sequence[tuple[int, ops.Write]], batch: int | None = None) -> Applied:
        """Apply journal entries in order, ``batch`` (:data:`APPLY_BATCH`) per transaction; an
        entry the store refuses for good (a bad value, a constraint) is named in ``refused`` and
        the others land (a batch that fails is landed again one entry at a time). StoreBusy
        passes through (what landed stays landed: the keys)."""
        done, batch = Applied(), batch or APPLY_BATCH
        for start in range(0, len(entries), batch):
            chunk = entries[start : start + batch]
            try:
                done.add(self.apply_entries(chunk))
            except StoreBusy:
                raise
            except Exception as err:  # noqa: BLE001 - find the one write that fails, keep the rest
                if len(chunk) > 1:
                    done.add(self.land(chunk, 1))
                else:
                    done.refused.append(f"entry {chunk[0][0]} ({chunk[0][1].op}): {one_line(err)}")
        return done

    def delete_run(self, run_id: str) -> list[str]:
        """Delete a run, or every run of a group, and all their rows (``run_id`` may be a
        unique prefix); returns the ids of the runs deleted."""
        full = self.resolve_id(run_id)
        ids = self.member_ids(full) if self.is_group(full) else [full]

        def delete(tx: Any) -> None:
            for table in (*CHILD_TABLES, KEY_TABLE):
                tx.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(i,) for i in ids])
            tx.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in ids])

        self._conn.write(delete)
        return ids

    @property
    def busy_reason(self) -> str | None:
        """Why the store's last write was still waiting (full, locked, unreachable), or None."""
        return self._conn.last_busy

    def replaced(self) -> bool:
        """Whether the store file was deleted or replaced since this object opened it."""
        return self._conn.replaced()

    def save_copy(self, target: str | os.PathLike[str]) -> None:
        """Write everything this connection sees (all runs) to a new file ``target``."""
        self._conn.save_copy(Path(target))

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper is gone (its pid on this host, its heartbeat on
        another): record it ``interrupted``, ended at its last sample, with an event (the
        reader only reports it)."""
        if not self._wrapper_gone(row):
            return row
        detail = "its process was gone when the store was read; energy is the last sample"
        event = (
            lost_event(row)
            if row["host"] != self.host
            else {"t": time.time(), "event": "wrapper died", "detail": detail}
        )
        try:
            self.write(ops.AbandonRun(row["id"], ended_unix=None, event=event))
        except StoreError:
            return dict(row, status="interrupted")  # reported anyway; the next writer retries
        return self._conn.query("SELECT * FROM runs WHERE id = ?", (row["id"],))[0]

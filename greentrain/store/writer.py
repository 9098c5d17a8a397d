"""The store's writer API: a run's writes, as :mod:`greentrain.store.ops` types them.

``create_run`` (status ``running``) -> ``set_meters`` / ``update_config`` / ``begin_window`` /
``end_window`` / ``add_metrics`` / ``add_energy`` -> ``set_run_fields(best=...)`` ->
``finish_run``. Each call is one short transaction (retried whole while the store is busy).

A run's own writes come from its journal instead, through :meth:`Store.apply_entries`: each
entry is applied with its unique key ``(run_id, n)`` in the ``journal_applied`` table, in the
same transaction as its rows (``INSERT ... ON CONFLICT DO NOTHING``; an entry whose key is
there already is skipped), so applying a journal twice, from two processes at once, or again
after a crash mid-apply changes nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import greentrain.store.ops as ops
from greentrain.errors import StoreBusy, StoreError
from greentrain.record.text import storable
from greentrain.store.journal import claim, pending_journals, read_journal
from greentrain.store.liveness import process_started, start_ticks
from greentrain.store.recovery import StoreRecovery
from greentrain.store.schema import CHILD_TABLES, KEY_TABLE


class StorableTx:
    """A transaction whose plain text parameters (a name, a working directory) pass through
    :func:`greentrain.record.text.storable` on their way in: text that is not UTF-8 (a path
    the system gave as bytes) is stored escaped and marked, never refused. JSON columns are
    made storable by :func:`greentrain.record.jsonable.to_jsonable` already."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        return self._tx.execute(sql, [storable(p) if isinstance(p, str) else p for p in params])

    def executemany(self, sql: str, rows: list) -> Any:
        return self._tx.executemany(
            sql, [[storable(p) if isinstance(p, str) else p for p in row] for row in rows]
        )


@dataclass
class Applied:
    """What applying journal entries did: entries stored now, and entries found already there
    (applied before, by this process or another)."""

    stored: int = 0
    already: int = 0


_log = logging.getLogger("greentrain.store")
APPLY_BATCH = 200  # journal entries per transaction when a journal is synced
OPEN_SYNC_PATIENCE_S = 5.0  # how long opening a store waits for it to land waiting journals


@dataclass
class SyncReport:
    """What :meth:`Store.sync_journals` did: journals landed whole (and deleted), entries
    stored now and found already there, torn entries skipped (one line each), and journals
    left waiting (one line each: in use, or the store did not take them)."""

    journals: int = 0
    stored: int = 0
    already: int = 0
    torn: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


class Store(StoreRecovery):
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
        deleted. A store that stays busy leaves the journal for later; one that refuses an
        entry for good leaves it as ``...failed``."""
        report = SyncReport()
        for path in pending_journals(self.location):
            if path.name.endswith(".failed"):
                continue
            with claim(path) as claimed:
                if claimed is None:
                    report.kept.append(f"{path}: in use by its run or another importer")
                elif not self._land(claimed, report):
                    break  # the store is busy: the rest waits too
        return report

    def _land(self, path: Path, report: SyncReport) -> bool:
        """Apply one claimed journal; False when the store was busy (the journal stays)."""
        journal = read_journal(path)
        report.torn += journal.torn
        try:
            for start in range(0, len(journal.entries), APPLY_BATCH):
                done = self.apply_entries(journal.entries[start : start + APPLY_BATCH])
                report.stored += done.stored
                report.already += done.already
        except StoreBusy as err:
            report.kept.append(f"{path}: {err}")
            return False
        except StoreError as err:
            failed = path.with_name(path.name.split(".claimed-")[0] + ".failed")
            path.rename(failed)
            report.kept.append(f"{failed}: the store refused it ({err})")
            return True
        path.unlink()
        report.journals += 1
        return True

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

    def create_run(
        self,
        run_id: str,
        *,
        name: str,
        command: list[str],
        cwd: str,
        tags: Mapping[str, str] | None = None,
        git: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        carbon: Mapping[str, Any] | None = None,
        started_unix: float | None = None,
        pid: int | None = None,
        group_id: str | None = None,
        group_rank: int | None = None,
        parent_id: str | None = None,
    ) -> None:
        """Insert a ``running`` run owned by process ``pid`` (default: this one) on this host;
        ``group_id``: the run group it is one node's part of, ``group_rank`` its rank there;
        ``parent_id``: the run it is nested in (:mod:`greentrain.record.nesting`)."""
        pid = os.getpid() if pid is None else pid
        self.write(ops.CreateRun(
            run_id, name=name, command=list(command), cwd=cwd, tags=dict(tags or {}),
            git=dict(git or {}), env=dict(env or {}),
            carbon=None if carbon is None else dict(carbon),
            started_unix=time.time() if started_unix is None else started_unix, host=self.host,
            pid=pid, pid_started=process_started(pid), pid_ticks=start_ticks(pid),
            group_id=group_id, group_rank=group_rank, parent_id=parent_id,
        ))  # fmt: skip

    def update_config(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Merge ``params`` into the run's config (later keys win), in one transaction."""
        self.write(ops.UpdateConfig(run_id, params=dict(params)))

    def set_run_fields(self, run_id: str, **fields: Any) -> None:
        """Update plain columns (carbon, baseline, best, git, env, name ...); dicts -> JSON."""
        self.write(ops.SetRunFields(run_id, fields=fields))

    def set_meters(self, run_id: str, meters: Iterable[Mapping[str, Any]]) -> None:
        """Record (replace) each meter's status: meter, available, reason, fix, error, devices."""
        self.write(ops.SetMeters(run_id, meters=[dict(m) for m in meters]))

    def add_energy(self, run_id: str, window_idx: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """Store (replace) energy rows for a scope: ``window_idx`` = -1 (whole run) or a window."""
        self.write(ops.AddEnergy(run_id, window_idx=window_idx, rows=[dict(r) for r in rows]))

    def begin_window(
        self, run_id: str, idx: int, name: str, started_unix: float, info: Mapping | None = None
    ) -> None:
        """Open window ``idx`` named ``name``."""
        self.write(ops.BeginWindow(run_id, idx=idx, name=name, started_unix=started_unix,
                                   info=dict(info or {})))  # fmt: skip

    def end_window(
        self,
        run_id: str,
        idx: int,
        ended_unix: float,
        duration_s: float,
        energy_rows: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Close window ``idx`` (duration in seconds) and store its energy rows."""
        self.write(ops.EndWindow(run_id, idx=idx, ended_unix=ended_unix, duration_s=duration_s,
                                 energy_rows=[dict(r) for r in energy_rows]))  # fmt: skip

    def add_metrics(self, run_id: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Append logged metrics: each entry has step, window, time_s and a metrics dict."""
        self.write(ops.AddMetrics(run_id, entries=[dict(e) for e in entries]))

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        exit_code: int | None,
        ended_unix: float | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Set the final status, exit code, end time and duration (seconds; default: end -
        record creation)."""
        self.write(ops.FinishRun(
            run_id, status=status, exit_code=exit_code,
            ended_unix=time.time() if ended_unix is None else ended_unix, duration_s=duration_s,
        ))  # fmt: skip

    def add_events(self, run_id: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Append events (``{"t", "event", ...}``) to the run's ``events`` list."""
        self.write(ops.AddEvents(run_id, events=[dict(e) for e in events]))

    def add_sample(
        self,
        run_id: str,
        seq: int,
        t: float,
        cpu_s: float | None,
        readings: Iterable[Mapping[str, Any]],
    ) -> None:
        """Store the run's ``seq``-th sample: unix time, job CPU seconds and cumulative readings
        (:func:`greentrain.record.readings.sample_readings`)."""
        self.write(ops.AddSample(run_id, seq=seq, t=t, cpu_s=cpu_s,
                                 readings=[dict(r) for r in readings]))  # fmt: skip

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

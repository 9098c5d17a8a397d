"""Keeping records whole when something goes wrong: a dead wrapper, a busy store, a store
file deleted or replaced while a run was writing to it.

* :meth:`StoreRecovery.abandon_run` marks a run whose wrapper died ``interrupted`` (ended at
  its last sample, whose energy the record keeps) with an event saying so; readers that find
  such a run call it through :meth:`StoreRecovery._reap`, the wrapper's watchdog directly.
* :meth:`StoreRecovery.import_spools` applies the writes a run left in its spool folder when
  the store stayed locked or unreachable (see :mod:`greentrain.run.writes`): ``<file>.spool/``
  beside an SQLite store, a local folder per database for PostgreSQL
  (:meth:`~greentrain.store.location.StoreLocation.spool_dir`).
* :meth:`StoreRecovery.replaced` and :meth:`StoreRecovery.save_copy` let a wrapper notice its
  store file vanished and write everything it still holds to a new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import StoreBusy, StoreError
from greentrain.record.jsonable import dumps, loads, to_jsonable
from greentrain.store.location import StoreLocation, locate
from greentrain.store.reader import StoreReader
from greentrain.units import iso_utc

_SPOOLABLE = frozenset(
    {"create_run", "update_config", "add_metrics", "begin_window", "end_window", "add_energy",
     "set_run_fields", "set_meters", "finish_run", "add_events", "add_sample"}
)  # fmt: skip


def spool_dir(store: str | os.PathLike[str] | StoreLocation) -> Path:
    """Where runs leave the writes a busy or unreachable store could not take: ``<file>.spool/``
    for an SQLite file, a local folder named after the database for a PostgreSQL URL."""
    return locate(store).spool_dir()


class StoreRecovery(StoreReader):
    """The recovery half of :class:`~greentrain.store.Store` (see the module docstring)."""

    @contextlib.contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Writes in the block wait at most ``seconds`` for another writer (then StoreBusy)."""
        with self._conn.patience(seconds):
            yield

    def replaced(self) -> bool:
        """Whether the store file was deleted or replaced since this object opened it."""
        return self._conn.replaced()

    def save_copy(self, target: str | os.PathLike[str]) -> None:
        """Write everything this connection sees (all runs) to a new file ``target``."""
        self._conn.save_copy(Path(target))

    def import_spools(self) -> int:
        """Apply the writes runs spooled while this store was locked; returns how many.

        A spool the store refuses (its run is not there: deleted, or lost by the server) is
        kept aside as ``RUN.jsonl.failed``, with one line on stderr, so it never stops the
        store from opening."""
        folder = self.location.spool_dir()
        if not folder.is_dir():
            return 0
        applied = 0
        for spool in sorted(folder.glob("*.jsonl")):
            with contextlib.suppress(OSError, ValueError):
                ops = [json.loads(line) for line in spool.read_text("utf-8").splitlines() if line]
                try:
                    for entry in ops:
                        if entry.get("op") in _SPOOLABLE:
                            getattr(self, entry["op"])(**entry.get("kwargs") or {})
                            applied += 1
                except StoreBusy:
                    raise
                except StoreError as err:
                    kept = spool.with_name(spool.name + ".failed")
                    spool.rename(kept)
                    print(
                        f"greentrain: the writes in {spool} could not be applied to "
                        f"{self.path} ({err}); they are kept in {kept}",
                        file=sys.stderr,
                    )
                    continue
                spool.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
        return applied

    def abandon_run(self, run_id: str, ended_unix: float | None, event: Mapping[str, Any]) -> bool:
        """A run whose wrapper died: mark it ``interrupted`` if still ``running`` (ended at
        ``ended_unix``, else at its last sample) and append ``event``. True if it was running."""

        def mark(tx: Any) -> bool:
            row = tx.execute(
                "SELECT status, events FROM runs WHERE id = ?" + self._conn.for_update, (run_id,)
            ).fetchone()
            if row is None:
                return False
            events = loads(row[1], []) + [to_jsonable(dict(event))]
            if row[0] != "running":
                tx.execute("UPDATE runs SET events = ? WHERE id = ?", (dumps(events), run_id))
                return False
            end = ended_unix
            if end is None:
                last = tx.execute("SELECT MAX(t) FROM samples WHERE run_id = ?", (run_id,))
                end = last.fetchone()[0]
            tx.execute(
                "UPDATE runs SET status = 'interrupted', events = ?,"
                " ended_at = COALESCE(?, ended_at),"
                " duration_s = COALESCE(? - started_unix, duration_s) WHERE id = ?",
                (dumps(events), None if end is None else iso_utc(end), end, run_id),
            )
            return True

        return self._conn.write(mark)

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper is gone on this host: record it ``interrupted``,
        ended at its last sample, with an event (the reader only reports it)."""
        if not self._wrapper_gone(row):
            return row
        event = {
            "t": time.time(),
            "event": "wrapper died",
            "detail": "its process was gone when the store was read; energy is the last sample",
        }
        try:
            self.abandon_run(row["id"], None, event)
        except StoreError:
            return dict(row, status="interrupted")  # reported anyway; the next writer retries
        return self._conn.query("SELECT * FROM runs WHERE id = ?", (row["id"],))[0]

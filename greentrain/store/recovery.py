"""Keeping records whole when something goes wrong: a dead wrapper, a store file deleted or
replaced while a run was writing to it.

* :meth:`StoreRecovery.abandon_run` marks a run whose wrapper died ``interrupted`` (ended at
  its last sample, whose energy the record keeps) with an event saying so; readers that find
  such a run call it through :meth:`StoreRecovery._reap`, the wrapper's watchdog directly. A
  run whose journal still waits on this machine is not reaped: its end may be in the journal
  (``greentrain store sync`` lands it).
* :meth:`StoreRecovery.replaced` and :meth:`StoreRecovery.save_copy` let a wrapper notice its
  store file vanished and write everything it still holds to a new file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.store.journal import has_pending
from greentrain.store.liveness import lost_event, node_lost, pid_alive
from greentrain.store.ops import AbandonRun
from greentrain.store.reader import StoreReader


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

    def abandon_run(self, run_id: str, ended_unix: float | None, event: Mapping[str, Any]) -> None:
        """A run whose wrapper died: mark it ``interrupted`` if still ``running`` (ended at
        ``ended_unix``, else at its last sample) and append ``event``."""
        write = AbandonRun(run_id, ended_unix=ended_unix, event=dict(event))
        self._conn.write(lambda tx: write.run(tx, self._conn))

    def _wrapper_gone(self, row: dict[str, Any]) -> bool:
        if row["status"] != "running":
            return False
        if row["host"] != self.host:  # a pid means nothing here: the heartbeat decides
            return node_lost(row)
        return not pid_alive(
            row["pid"], row["pid_started"], row.get("pid_ticks")
        ) and not has_pending(self.location, row["id"])

    def _reap(self, row: dict[str, Any]) -> dict[str, Any]:
        """A ``running`` run whose wrapper is gone on this host: record it ``interrupted``,
        ended at its last sample, with an event (the reader only reports it)."""
        if not self._wrapper_gone(row):
            return row
        event = lost_event(row) if row["host"] != self.host else {
            "t": time.time(),
            "event": "wrapper died",
            "detail": "its process was gone when the store was read; energy is the last sample",
        }  # fmt: skip
        try:
            self.abandon_run(row["id"], None, event)
        except StoreError:
            return dict(row, status="interrupted")  # reported anyway; the next writer retries
        return self._conn.query("SELECT * FROM runs WHERE id = ?", (row["id"],))[0]

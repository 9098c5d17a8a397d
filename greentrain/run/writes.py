"""A run's store writes, off the job's path: a queue, one writer thread, a spool file last.

Every write of a run's record (config, metrics, windows, energy, the final status) goes through
:class:`WriteQueue`: the caller (the channel's receiver, or a training loop under ``track()``)
only enqueues, so a busy store never stretches the job or delays a window's meter reading.
The writer thread applies the writes in order; while another process holds the store's write
lock, or a PostgreSQL server does not answer, it waits and retries, and says so once on stderr.
At the end :meth:`WriteQueue.close` waits up to ``final_wait_s`` for the store; what still
cannot be written is appended to a spool file (``<store>.spool/<run id>.jsonl`` beside an
SQLite file; a local folder per database for PostgreSQL, see
:meth:`~greentrain.store.StoreLocation.spool_dir`), reported on stderr, and imported by the next
process on this machine that opens the store for writing
(:meth:`greentrain.store.Store.import_spools`). Nothing is dropped.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from greentrain.errors import StoreBusy, StoreError
from greentrain.record.jsonable import dumps
from greentrain.store import Store
from greentrain.store.location import ENV_SPOOL

RETRY_PAUSE_S = 1.0  # between attempts while the store is locked
ATTEMPT_S = 2.0  # how long one attempt waits for the lock
FINAL_WAIT_S = 120.0  # how long the end of a run waits for a busy store before spooling


class WriteQueue:
    """Ordered, non-blocking writes of one run's record to ``store``."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.errors: list[str] = []  # writes that failed for a reason other than a busy store
        self.spooled: Path | None = None
        self._ops: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy_since: float | None = None
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="greentrain-writes", daemon=True)
        self._thread.start()

    def submit(self, op: str, **kwargs: Any) -> None:
        """Queue ``store.<op>(**kwargs)``; returns at once."""
        with self._cond:
            self._ops.append((op, kwargs))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._ops)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._ops and not self._closing:
                    self._cond.wait()
                if not self._ops and self._closing:
                    return
                op, kwargs = self._ops[0]
            if self._apply(op, kwargs):
                with self._cond:
                    self._ops.popleft()
                    self._cond.notify_all()
            else:
                time.sleep(RETRY_PAUSE_S)
                with self._cond:
                    if self._closing and self._deadline_passed():
                        return

    def _apply(self, op: str, kwargs: dict[str, Any]) -> bool:
        """True when the write landed (or failed for good and was recorded); False if busy."""
        try:
            with self.store.patience(ATTEMPT_S):
                getattr(self.store, op)(**kwargs)
        except StoreBusy as err:
            self._busy(err)
            return False
        except StoreError as err:
            self.errors.append(f"{op}: {err}")
            return True
        except Exception as err:  # noqa: BLE001 - a bug in one write must not stop the others
            self.errors.append(f"{op}: {type(err).__name__}: {err}")
            return True
        if self._busy_since is not None and self._warned:
            waited = time.monotonic() - self._busy_since
            print(f"greentrain: the store is free again after {waited:.0f} s", file=sys.stderr)
        self._busy_since = None
        return True

    def _busy(self, err: StoreBusy) -> None:
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        if not self._warned and now - self._busy_since >= ATTEMPT_S:
            self._warned = True
            print(
                f"greentrain: {err}; the run's metrics and energy are kept and written when it "
                "frees",
                file=sys.stderr,
            )

    def _deadline_passed(self) -> bool:
        return self._close_deadline is not None and time.monotonic() > self._close_deadline

    _close_deadline: float | None = None

    def close(self, final_wait_s: float | None = None) -> Path | None:
        """Wait for every write (at most ``final_wait_s``, default :data:`FINAL_WAIT_S`, for a
        busy store), then spool the rest; returns the spool file, or None if all landed."""
        if final_wait_s is None:
            final_wait_s = FINAL_WAIT_S
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + final_wait_s
            self._cond.notify_all()
        self._thread.join(timeout=final_wait_s + ATTEMPT_S + RETRY_PAUSE_S + 1.0)
        with self._cond:
            rest = list(self._ops)
            self._ops.clear()
        if rest:
            try:
                self.spooled = self._spool(rest)
            except OSError as err:
                self.errors.append(f"{len(rest)} writes could not be spooled either ({err})")
                print(
                    f"greentrain: the store {self.store.path} stayed busy and the spool folder "
                    f"cannot be written ({err}); {len(rest)} writes of run {self.run_id} are "
                    f"lost (set {ENV_SPOOL} to a writable folder)",
                    file=sys.stderr,
                )
                self.spooled = Path(os.devnull)
        return self.spooled

    def _spool(self, ops: list[tuple[str, dict[str, Any]]]) -> Path:
        folder = self.store.location.spool_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run_id}.jsonl"
        note = {
            "t": time.time(),
            "event": "spooled",
            "writes": len(ops),
            "why": "the store stayed locked by another process or unreachable",
        }
        with open(path, "a", encoding="utf-8") as fh:
            for op, kwargs in ops:
                fh.write(dumps({"op": op, "kwargs": kwargs}) + "\n")
            marker = {"op": "add_events", "kwargs": {"run_id": self.run_id, "events": [note]}}
            fh.write(json.dumps(marker) + "\n")
        print(
            f"greentrain: the store {self.store.path} stayed busy; {len(ops)} writes of run "
            f"{self.run_id} are saved in {path} and land in the store the next time a greentrain "
            "command opens it for writing (e.g. `greentrain runs`)",
            file=sys.stderr,
        )
        return path


def rescue_if_replaced(store: Store, run_id: str) -> None:
    """The store file was deleted or replaced mid-run: save what this connection holds (every
    run it saw, this one included) to the file's place, or beside it if a new file is there."""
    if not store.replaced():
        return
    path = Path(store.path)
    target = path if not path.exists() else path.with_name(f"{path.name}.{run_id}.db")
    try:
        store.save_copy(target)
    except Exception as err:  # noqa: BLE001 - report, never hide the job's exit code
        print(
            f"greentrain: the store {path} was deleted or replaced while run {run_id} "
            f"was going, and saving a copy failed ({err}); the record is lost",
            file=sys.stderr,
        )
        return
    print(
        f"greentrain: the store {path} was deleted or replaced while run {run_id} was "
        f"going; everything it held, this run included, was saved to {target}",
        file=sys.stderr,
    )

"""A run's writes: appended to its journal, then landed in the store by one thread.

:meth:`RunWrites.submit` appends a typed write (:mod:`greentrain.store.ops`) to the run's
journal (:mod:`greentrain.store.journal`) and returns: the job, a window's meter reading and the
run's end time never wait for the store. One thread lands the entries in order through
:meth:`greentrain.store.Store.land`, the same keyed path ``greentrain store sync``,
merges and the watchdog use, so an entry is stored exactly once however often it is tried.

A store that is locked, unreachable, hung or full is a passing fault: the thread retries, and
one line on stderr says where the journal is. The store need not even be open when the run
starts: the same thread opens it, and keeps trying. At the end
:meth:`RunWrites.close` waits at most its deadline (the run's ``--grace``); whatever has not
landed by then stays in the journal, which ``greentrain store sync`` (or the next writing
command on this machine) lands.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import threading
import time
from pathlib import Path

from greentrain.errors import StoreBusy, StoreError
from greentrain.run.oversight import say
from greentrain.store import Store, StoreLocation
from greentrain.store.journal import JournalWriter
from greentrain.store.ops import Write
from greentrain.store.writer import APPLY_BATCH

RETRY_PAUSE_S = 1.0  # between attempts while the store is busy or unreachable
ATTEMPT_S = 2.0  # how long one attempt waits for a lock
OPEN_WAIT_S = 2.0  # how long a run's start waits for its store before going on without it


class RunWrites:
    """One run's journal and the thread landing it (see the module docstring)."""

    def __init__(self, journal: JournalWriter | None, store: Store | StoreLocation) -> None:
        self.journal = journal
        self.errors: list[str] = []  # writes the store refused for good (kept in the journal)
        self.location = store.location if isinstance(store, Store) else store
        self._store = store if isinstance(store, Store) else None
        self._why: StoreError | None = None  # why the store is not open (set when it is not)
        self._fatal: StoreError | None = None  # a configuration error: retrying will not help
        self._tried = threading.Event()  # the first attempt to open the store has ended
        self._pid = os.getpid()
        self._pending: collections.deque[tuple[int, Write]] = collections.deque()
        self._cond = threading.Condition()
        self._n = 0
        self._closing = False
        self._deadline: float | None = None
        self._busy_since: float | None = None
        self._warned = False
        self._last_error: StoreError | None = None  # the last reason the store gave for not landing
        self._synced = False
        self._thread = threading.Thread(target=self._loop, name="greentrain-writes", daemon=True)
        self._thread.start()

    @property
    def where(self) -> Path | None:
        """The journal's path (None when it could not be created)."""
        return self.journal.path if self.journal is not None else None

    def submit(self, write: Write, *, sync: bool = False) -> None:
        """Append ``write`` to the journal (``fsync`` if ``sync``) and queue it; returns at once.
        In a forked child (its thread did not survive the fork) nothing is written."""
        if os.getpid() != self._pid:
            return
        with self._cond:
            journal = self.journal
            self._n = journal.append(write, sync=sync) if journal is not None else self._n + 1
            self._pending.append((self._n, write))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def store(self) -> Store | None:
        """The store, once open."""
        return self._store

    def wait_open(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the first attempt to open the store; raise its
        configuration error (a malformed URL, a file that is not a store, a newer schema)."""
        self._tried.wait(seconds)
        if self._fatal is not None:
            raise self._fatal

    def _open(self) -> Store | None:
        """The store, opened now if it was not (None: busy or unreachable; :attr:`_why`)."""
        if self._store is None and self._fatal is None:
            try:
                self._store = Store(self.location, sync=False)
            except StoreBusy as err:
                self._why = err
            except StoreError as err:
                self._why = self._fatal = err
        self._tried.set()
        return self._store

    def _loop(self) -> None:
        while True:
            store = self._open()
            with self._cond:
                waiting = store is not None or self._fatal is not None  # else: retry soon
                while waiting and not self._pending and not self._closing:
                    self._cond.wait()
                late = self._deadline is not None and time.monotonic() > self._deadline
                if self._closing and (not self._pending or late):
                    return
                batch = list(itertools.islice(self._pending, APPLY_BATCH))
            if store is None:
                self._busy(self._why)
                continue
            if not batch:
                continue
            if not self._synced:  # every writing command lands its store's waiting journals
                self._synced = True
                with contextlib.suppress(StoreError):
                    store.sync_journals()
            try:  # a write the store refuses for good is noted and the rest land
                with store.patience(ATTEMPT_S):
                    self.errors += store.land(batch, len(batch)).refused
            except StoreBusy as err:
                self._busy(err)
                continue
            with self._cond:
                for _ in batch:
                    self._pending.popleft()
                self._cond.notify_all()
            if self._busy_since is not None and self._warned:
                say(f"the store answers again after {time.monotonic() - self._busy_since:.0f} s")
            self._busy_since = None

    def _busy(self, err: StoreError | None) -> None:
        """The store is busy or unreachable: warn once (after :data:`ATTEMPT_S`, or at the
        end), then pause :data:`RETRY_PAUSE_S` before the next attempt."""
        now = time.monotonic()
        self._last_error = err if err is not None else self._last_error
        if self._busy_since is None:
            self._busy_since = now
        if not self._warned and (now - self._busy_since >= ATTEMPT_S or self._closing):
            self._warned = True
            where = f"its journal {self.where}" if self.where else "memory (no journal)"
            say(f"{err}; this run's writes are kept in {where} and land when the store "
                 "answers (or by `greentrain store sync`)")  # fmt: skip
        with self._cond:
            self._cond.wait(RETRY_PAUSE_S)

    def close(self, deadline_s: float) -> bool:
        """Wait at most ``deadline_s`` seconds for every write to land; True if all did (the
        journal is then deleted). Otherwise the journal stays, and one line says where."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + deadline_s
            self._cond.notify_all()
        self._thread.join(timeout=max(0.0, deadline_s))
        hung = self._thread.is_alive()
        with self._cond:
            left = len(self._pending)
            self._deadline = 0.0  # a thread that comes back stops at once
        landed = not hung and not left and not self.errors
        if self.journal is not None:
            broken = self.journal.broken
            self.journal.close(remove=landed)
            if not landed and broken is not None:
                say(f"the journal {self.where} could not be written ({broken}); writes "
                     "made after that are lost")  # fmt: skip
        if not landed:
            for error in self.errors:
                say(f"the store refused a write: {error}")
            if self.where is not None and (not self._warned or self.errors):
                reason = self._last_error or (self._store.busy_reason if self._store else None)
                why = f" ({reason})" if reason else ""
                say(f"{left or len(self.errors)} writes of this run wait in {self.where}{why}; "
                     "`greentrain store sync` lands them once the store answers")  # fmt: skip
        return landed

    @property
    def hung(self) -> bool:
        """Whether the landing thread is still inside a store call (a hung server)."""
        return self._thread.is_alive()

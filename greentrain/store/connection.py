"""One connection to a run store, whatever the backend: one transaction at a time, retries while
the store is busy, backend errors as one-line :class:`~greentrain.errors.StoreError`.

Two backends implement :class:`Connection`: SQLite (:mod:`greentrain.store.sqlite`, the
embedded default, a file many processes share) and PostgreSQL (:mod:`greentrain.store.postgres`,
a server many machines share). Both speak the same SQL (``?`` placeholders; PostgreSQL's
adapter translates), the same schema and the same semantics:

* :meth:`Connection.write` runs a function in one transaction and commits it, or rolls back on
  any error. While the store is *busy* -- another writer holds SQLite's lock, a PostgreSQL row
  or table lock, or the server does not answer -- the whole transaction is retried with
  back-off for up to :attr:`Connection.patience_s` seconds (default :data:`RETRY_S`), then
  :class:`~greentrain.errors.StoreBusy` is raised (a run's writes then wait in its journal).
* :meth:`Connection.query` reads, retried the same way.
* A store that is damaged, foreign, read-only, full, or refuses our credentials raises
  StoreError, with the cause and the fix in one line, and is never written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from greentrain.errors import StoreBusy, StoreError
from greentrain.store.location import (
    DEFAULT_PATH,
    ENV_STORE,
    StoreLocation,
    default_path,
    default_target,
)

RETRY_S = 60.0

T = TypeVar("T")

__all__ = [
    "DEFAULT_PATH",
    "ENV_STORE",
    "RETRY_S",
    "Connection",
    "Cursor",
    "Tx",
    "default_path",
    "default_target",
]


class Cursor(Protocol):
    """What :meth:`Tx.execute` returns (sqlite3's and psycopg's cursors both fit)."""

    description: Any
    rowcount: int

    def fetchone(self) -> tuple | None: ...

    def fetchall(self) -> list[tuple]: ...


class Tx(Protocol):
    """The handle a transaction's function gets: ``execute(sql, params)`` with ``?``
    placeholders, and ``executemany``."""

    def execute(self, sql: str, params: tuple | list = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: list) -> Any: ...


class Connection:
    """A store's connection, shared by the threads of one process (calls are serialised).

    Subclasses implement the backend hooks (``_begin``, ``_commit``, ``_rollback``, ``_busy``,
    ``_failure``, ``_tables_sql``, ...). Args as for :func:`greentrain.store.backend.connect`.
    """

    kind = "?"
    for_update = ""  # appended to a SELECT that a transaction then updates (row lock)

    def __init__(self, location: StoreLocation, *, read_only: bool = False, create: bool = True):
        self.location = location
        self.path: Path | str = location.path if location.path is not None else location.shown
        self.read_only = read_only
        self.create = create and not read_only
        self.patience_s = RETRY_S  # how long a write waits for a busy store
        self.last_busy: str | None = None  # why the last retried call was waiting (None: it ended)
        self._lock = threading.RLock()

    # -- what a backend provides ----------------------------------------------------------------
    @property
    def tx(self) -> Tx:
        """The handle statements run on (inside and outside transactions)."""
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _busy(self, err: BaseException) -> str | None:
        """Why ``err`` means "try again later" (locked, unreachable), else None."""
        raise NotImplementedError

    def _failure(self, err: BaseException, reading: bool) -> StoreError | None:
        """``err`` (a backend error) as a one-line StoreError; None if it is not one."""
        raise NotImplementedError

    def tables(self, tx: Tx | None = None) -> set[str]:
        """Names of the tables in the store (in the store's schema, for PostgreSQL)."""
        raise NotImplementedError

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` (empty if it does not exist)."""
        raise NotImplementedError

    def setup(self) -> None:
        """Backend settings applied once a writable store is open (SQLite: WAL mode)."""

    def lock_schema(self, tx: Tx) -> None:
        """Serialise schema migrations between processes inside ``tx`` (PostgreSQL)."""

    def ddl(self, statement: str) -> str:
        """A CREATE/ALTER statement written for SQLite, in this backend's types."""
        return statement

    def replaced(self) -> bool:
        """Whether the store was deleted or replaced since it was opened (SQLite files)."""
        return False

    def save_copy(self, target: Path) -> None:
        """Write the whole database as this connection sees it to ``target`` (SQLite only)."""
        raise StoreError(f"store {self.path}: saving a copy is only possible for SQLite files")

    def damaged(self, err: BaseException) -> str:
        """The one-line message for a store that cannot be read."""
        return (
            f"store {self.path} cannot be read ({one_line(err)}); it is damaged or not a "
            "greentrain store: pass another --store (it was left untouched)"
        )

    def close(self) -> None:
        raise NotImplementedError

    # -- shared behaviour -----------------------------------------------------------------------
    @contextlib.contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Writes in the block wait at most ``seconds`` for a busy store, then StoreBusy."""
        previous, self.patience_s = self.patience_s, seconds
        try:
            yield
        finally:
            self.patience_s = previous

    def retry(
        self, fn: Callable[[], T], patience_s: float | None = None, *, reading: bool = False
    ) -> T:
        """``fn()``, retried with back-off while the store is busy (up to ``patience_s``,
        default :attr:`patience_s`), then StoreBusy; other backend errors become StoreError."""
        wait_s = self.patience_s if patience_s is None else patience_s
        deadline = time.monotonic() + wait_s
        delay = 0.01
        while True:
            try:
                result = fn()
                self.last_busy = None
                return result
            except StoreError:
                raise
            except Exception as err:
                why = self._busy(err)
                if why is not None:
                    self.last_busy = f"store {self.path} {why}"
                if why is None:
                    mapped = self._failure(err, reading)
                    if mapped is None:
                        raise
                    raise mapped from err
                if time.monotonic() > deadline:
                    raise StoreBusy(f"store {self.path} {why}; gave up after {wait_s:g} s") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"store {self.path} was opened read-only")

    def _once(self, fn: Callable[[Tx], T]) -> T:
        with self._lock:
            try:
                self._begin()
                result = fn(self.tx)
                self._commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    self._rollback()
                raise
            return result

    def _begin_or_undo(self) -> None:
        try:
            self._begin()
        except BaseException:
            with contextlib.suppress(Exception):
                self._rollback()
            raise

    def write(self, fn: Callable[[Tx], T]) -> T:
        """``fn(tx)`` in one transaction, committed; the whole transaction is retried while
        the store is busy (see the module docstring). Returns what ``fn`` returns."""
        self._check_writable()
        return self.retry(lambda: self._once(fn))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction as a block: begun (retried while busy), then committed, or
        rolled back if the block raises. Unlike :meth:`write`, a store that becomes busy
        inside the block is not retried (StoreBusy)."""
        self._check_writable()
        with self._lock:
            self.retry(self._begin_or_undo)
            try:
                yield self.tx
                self._commit()
            except BaseException as err:
                with contextlib.suppress(Exception):
                    self._rollback()
                if isinstance(err, StoreError):
                    raise
                why = self._busy(err)
                if why is not None:
                    raise StoreBusy(f"store {self.path} {why}") from err
                mapped = self._failure(err, False)
                if mapped is not None:
                    raise mapped from err
                raise

    def query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts (column name -> value)."""

        def run() -> list[dict[str, Any]]:
            with self._lock:
                cur = self.tx.execute(sql, params)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

        return self.retry(run, reading=True)


def one_line(err: BaseException | str) -> str:
    """An error's text on one line (backends' messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__

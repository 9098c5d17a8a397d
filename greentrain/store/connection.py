"""One SQLite connection to a run store: find the file, refuse foreign ones, retry when busy.

Several processes may write one store at once. Every write runs inside
:meth:`Connection.transaction`: ``BEGIN IMMEDIATE`` takes the write lock up front (retried
with back-off while another writer holds it, up to :data:`RETRY_S` seconds, on top of SQLite's
own 30 s busy timeout), so the statements inside never meet a busy database; the block
commits, or rolls back on any error.
Reads retry the same way. SQLite errors become :class:`~greentrain.errors.StoreError` with a
one-line message; a file that is not SQLite is never touched.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from greentrain.errors import StoreBusy, StoreError

DEFAULT_PATH = Path("reports") / "greentrain.db"
ENV_STORE = "GREENTRAIN_STORE"
RETRY_S = 60.0
BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"

T = TypeVar("T")


def default_path() -> Path:
    """``$GREENTRAIN_STORE`` if set, else ``./reports/greentrain.db``."""
    env = os.environ.get(ENV_STORE, "").strip()
    return Path(env) if env else DEFAULT_PATH


def _is_busy(err: sqlite3.OperationalError) -> bool:
    msg = str(err).lower()
    return "locked" in msg or "busy" in msg


class Connection:
    """A store file's connection, shared by the threads of one process (calls are serialised).

    Args:
        path: the SQLite file. Created (with its directory) unless ``read_only`` or not
            ``create``.
        read_only: open with ``mode=ro``; :meth:`transaction` then refuses to write.
        create: create a missing file (commands that only read pass False, so a mistyped
            ``--store`` is an error, not a new empty store).

    Raises:
        StoreError: the path is a directory, is not an SQLite file, cannot be created or
            read, or does not exist and may not be created.
    """

    def __init__(self, path: Path, *, read_only: bool = False, create: bool = True) -> None:
        self.path = path
        self.read_only = read_only
        self.create = create and not read_only
        self.patience_s = RETRY_S  # how long a write waits for another writer's lock
        self._lock = threading.RLock()
        self._check_file()
        self.db = self._connect()
        self._identity = self._file_identity()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def replaced(self) -> bool:
        """Whether the file was deleted or replaced since it was opened (writes go nowhere)."""
        return self._identity is not None and self._file_identity() != self._identity

    def save_copy(self, target: Path) -> None:
        """Write the whole database as it is on this connection to ``target`` (a new file)."""
        with self._lock:
            self.db.execute("VACUUM INTO ?", (str(target),))

    @contextlib.contextmanager
    def patience(self, seconds: float) -> Iterator[None]:
        """Writes in the block wait at most ``seconds`` for another writer, then StoreBusy."""
        previous, self.patience_s = self.patience_s, seconds
        try:
            yield
        finally:
            self.patience_s = previous

    def damaged(self, err: BaseException) -> str:
        """The one-line message for a file SQLite cannot read."""
        return (
            f"store {self.path} cannot be read ({err}); it is damaged or not a greentrain "
            "store: pass another --store path (the file was left untouched)"
        )

    def _check_file(self) -> None:
        p = self.path
        if p.exists() and p.is_dir():
            raise StoreError(f"store {p} is a directory; pass a file path with --store")
        if not p.exists():
            if not self.create:
                raise StoreError(f"no store at {p}; run `greentrain run` first or pass --store")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"cannot create the store directory {p.parent}: {err}") from err
            return
        try:
            with open(p, "rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as err:
            raise StoreError(f"cannot read store {p}: {err}") from err
        if head and head != SQLITE_MAGIC:
            raise StoreError(
                f"{p} is not a greentrain store (not an SQLite file); pass another --store "
                "path (the file was left untouched)"
            )

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
                target, uri_mode = uri, True
            else:
                target, uri_mode = str(self.path), False
            db = sqlite3.connect(
                target,
                uri=uri_mode,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err
        return db

    def retry(self, fn: Callable[[], T], patience_s: float | None = None) -> T:
        """``fn()``, retried with back-off while the database is busy (up to ``patience_s``,
        default :attr:`patience_s`), then :class:`~greentrain.errors.StoreBusy`."""
        deadline = time.monotonic() + (self.patience_s if patience_s is None else patience_s)
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise StoreError(self._explain(err)) from err
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"store {self.path} is locked by another process ({err}); gave up "
                        f"after {self.patience_s:g} s"
                    ) from err
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _explain(self, err: sqlite3.Error) -> str:
        """A one-line message naming the real cause (a read-only place, a full disk, ...)."""
        text = str(err)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if "readonly" in text.replace(" ", "").lower() or not os.access(folder, os.W_OK):
            return (
                f"store {self.path} cannot be written ({text}): the file or its folder "
                f"{folder} is read-only; pass a writable --store path"
            )
        if "full" in text.lower():
            return f"store {self.path}: the disk is full ({text}); free space and run again"
        return f"store {self.path}: {text}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` (retried while busy), then COMMIT, or
        ROLLBACK if the block raises. SQLite errors inside become StoreError."""
        if self.read_only:
            raise StoreError(f"store {self.path} was opened read-only")
        with self._lock:
            wait_ms = int(min(BUSY_TIMEOUT_MS, max(self.patience_s, 0.0) * 1000))
            self.db.execute(f"PRAGMA busy_timeout = {wait_ms}")
            self.retry(lambda: self.db.execute("BEGIN IMMEDIATE"))
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException as err:
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                if isinstance(err, sqlite3.DatabaseError):
                    raise StoreError(self._explain(err)) from err
                raise

    def query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts (column name -> value); a damaged file -> StoreError."""

        def run() -> list[dict[str, Any]]:
            with self._lock:
                cur = self.db.execute(sql, params)
                cols = [c[0] for c in cur.description]
                return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

        try:
            return self.retry(run)
        except sqlite3.DatabaseError as err:
            raise StoreError(self.damaged(err)) from err

    def close(self) -> None:
        with self._lock:
            self.db.close()

"""The SQLite backend: a store file in WAL mode that many processes of one machine share.

A write transaction starts with ``BEGIN IMMEDIATE``, which takes the file's write lock up front
(retried while another writer holds it, on top of SQLite's own busy timeout), so the statements
inside never meet a busy database. A file that is not SQLite is refused before it is opened and
never touched; one SQLite cannot read is "damaged", and a read-only place or a full disk is
named as the cause; a full disk is a passing fault (*busy*: retried, and a run's writes wait in
its journal until there is room). Keep SQLite files on a local disk: its locks are unsafe on
network file systems (NFS, Lustre), which is what the PostgreSQL backend is for.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import urllib.parse
from pathlib import Path

from greentrain.errors import StoreError
from greentrain.store.connection import Connection, Tx, one_line
from greentrain.store.location import StoreLocation

BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"


class SQLiteConnection(Connection):
    """A store file's connection (see :class:`~greentrain.store.connection.Connection`).

    Raises:
        StoreError: the path is a directory, is not an SQLite file, cannot be created or read,
            or does not exist and may not be created.
    """

    kind = "sqlite"

    def __init__(self, location: StoreLocation, *, read_only: bool = False, create: bool = True):
        super().__init__(location, read_only=read_only, create=create)
        self.file: Path = location.path  # type: ignore[assignment]
        self._check_file()
        self.db = self._connect()
        self._identity = self._file_identity()

    @property
    def tx(self) -> Tx:
        return self.db  # type: ignore[return-value]

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.file)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def replaced(self) -> bool:
        return self._identity is not None and self._file_identity() != self._identity

    def save_copy(self, target: Path) -> None:
        with self._lock:
            self.db.execute("VACUUM INTO ?", (str(target),))

    def _check_file(self) -> None:
        p = self.file
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
        """The connection; read-only: ``mode=ro``, and where that cannot open the file (a
        store in WAL mode on read-only media, whose ``-shm`` file cannot be created)
        ``immutable=1``, which reads the file as it is on disk without any lock."""
        if not self.read_only:
            return self._open(str(self.file), uri=False)
        uri = "file:" + urllib.parse.quote(str(self.file.resolve())) + "?mode=ro"
        db = self._open(uri, uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as err:
            if "unable to open" not in str(err) and "readonly" not in str(err).lower():
                return db  # busy or locked: the reads retry as usual
            db.close()
            db = self._open(uri + "&immutable=1", uri=True)
        return db

    def _open(self, target: str, *, uri: bool) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                target,
                uri=uri,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.file}: {err}") from err
        return db

    # -- transactions ---------------------------------------------------------------------------
    def _begin(self) -> None:
        wait_ms = int(min(BUSY_TIMEOUT_MS, max(self.patience_s, 0.0) * 1000))
        self.db.execute(f"PRAGMA busy_timeout = {wait_ms}")
        self.db.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _busy(self, err: BaseException) -> str | None:
        if isinstance(err, sqlite3.OperationalError):
            msg = str(err).lower()
            if "locked" in msg or "busy" in msg:
                return f"is locked by another process ({err})"
            if "full" in msg or "disk i/o error" in msg:
                return f"cannot take writes: the disk is full ({err})"
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return f"cannot take writes: the disk is full ({err})"
        return None

    def _failure(self, err: BaseException, reading: bool) -> StoreError | None:
        if isinstance(err, sqlite3.OperationalError):
            return StoreError(self._explain(err))
        if isinstance(err, sqlite3.DatabaseError):
            return StoreError(self.damaged(err) if reading else self._explain(err))
        return None

    def _explain(self, err: sqlite3.Error) -> str:
        """A one-line message naming the real cause (a read-only place, a full disk, ...)."""
        text = one_line(err)
        folder = self.file.parent if str(self.file.parent) else Path(".")
        if "readonly" in text.replace(" ", "").lower() or not os.access(folder, os.W_OK):
            return (
                f"store {self.file} cannot be written ({text}): the file or its folder "
                f"{folder} is read-only; pass a writable --store path"
            )
        if "full" in text.lower():
            return f"store {self.file}: the disk is full ({text}); free space and run again"
        return f"store {self.file}: {text}"

    # -- the schema's view of the file ----------------------------------------------------------
    def tables(self, tx: Tx | None = None) -> set[str]:
        with self._lock:
            cur = (tx or self.db).execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {r[0] for r in cur.fetchall()}

    def columns(self, table: str) -> list[str]:
        with self._lock:
            return [r[1] for r in self.db.execute(f"PRAGMA table_info({table})").fetchall()]

    def setup(self) -> None:
        def wal() -> None:
            with self._lock:
                if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = NORMAL")

        self.retry(wal)

    def close(self) -> None:
        with self._lock:
            self.db.close()

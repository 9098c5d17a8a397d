"""A run's journal: every write of the run, numbered and checksummed, on node-local disk before
it is applied to the store.

Where: ``$GREENTRAIN_JOURNAL_DIR``, else ``<tmp>/greentrain-journal-<uid>`` (``$TMPDIR`` or
``/tmp``): node-local on clusters, never the shared home directory, so an outage on 64 nodes
leaves 64 private journals, not one shared folder every node imports. The folder is created
``0700`` and refused if it belongs to another user or others may write it. Inside, one folder
per store (:func:`journal_dir`: a slug of the store's location and a digest of it), one file
per run, ``<run id>.jnl``.

Format: one line per entry, ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``, the JSON being
``{"n": N, "op": KIND, "args": {...}}`` (:mod:`greentrain.store.ops`). Entry 0 is the header,
op ``journal``: the store's location (an SQLite file's absolute path, a URL without its
password), the run id, host and pid. A line without its end or whose checksum does not match
is *torn*: reported (one line) and skipped; the entries around it land.

Durability: each entry is written with one ``write(2)`` as it is made (it survives the
process being killed); ``fsync`` at the journal's creation, at each window's end and at the
run's end (:meth:`JournalWriter.append` ``sync=True``), not for every batch of metrics.

Ownership: the process writing a journal holds an exclusive ``flock`` on it for the run's
life. An importer (:meth:`greentrain.store.Store.sync_journals`) takes a journal only if it
gets that lock at once, then *claims* it by renaming it ``<run id>.jnl.claimed-<pid>`` before
reading it, and deletes it once applied; a journal whose importer died mid-way stays claimed,
unlocked, and the next importer takes it over (its entries are keyed: nothing lands twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.store.location import StoreLocation, locate
from greentrain.store.ops import WRITES, Write

ENV_JOURNAL_DIR = "GREENTRAIN_JOURNAL_DIR"
SUFFIX = ".jnl"
CLAIMED = ".claimed-"
HEADER_OP = "journal"


def journal_root() -> Path:
    """``$GREENTRAIN_JOURNAL_DIR``, else ``<tmp>/greentrain-journal-<uid>``."""
    env = os.environ.get(ENV_JOURNAL_DIR, "").strip()
    if env:
        return Path(env)
    tmp = os.environ.get("TMPDIR", "").strip() or "/tmp"
    return Path(tmp) / f"greentrain-journal-{os.getuid()}"


def _shown(location: StoreLocation) -> str:
    """The store as its journals name it: an SQLite file's absolute path, else its URL."""
    return os.path.abspath(location.path) if location.path is not None else location.shown


def store_key(location: StoreLocation) -> str:
    """A folder name for the store: a slug of its location and a digest (an SQLite file by
    its absolute path)."""
    where = _shown(location)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", where.split("://", 1)[-1]).strip("-")
    digest = hashlib.sha1(where.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{slug[-48:]}-{digest}"


def journal_dir(store: str | os.PathLike[str] | StoreLocation | None) -> Path:
    """The folder of ``store``'s journals."""
    return journal_root() / store_key(locate(store))


def _private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700); refuse one another user owns or others may write."""
    root = journal_root()
    for folder in (root, path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise StoreError(
                f"journal folder {folder} belongs to another user or others may write it; "
                f"set {ENV_JOURNAL_DIR} to a private folder on local disk"
            )
    return path


def _line(n: int, op: str, args: dict[str, Any]) -> bytes:
    body = json.dumps({"n": n, "op": op, "args": args}, separators=(",", ":"), allow_nan=False)
    data = body.encode("utf-8", "surrogateescape")
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class JournalWriter:
    """The run's side: create ``<run id>.jnl`` (locked), append entries; with ``reopen``, take
    the run's existing journal over instead (a dead wrapper's, for its watchdog), if there is
    one. OSError when the journal cannot be created; :meth:`append` never raises (see
    :attr:`broken`)."""

    def __init__(self, location: StoreLocation, run_id: str, *, reopen: bool = False) -> None:
        folder = _private_dir(journal_root() / store_key(location))
        self.path = folder / f"{run_id}{SUFFIX}"
        self.pid = os.getpid()  # a forked child (a data loader worker) never appends
        self.broken: OSError | None = None  # the first failed append: later entries in memory only
        self.n = 0
        if reopen and self._reopen():
            return
        if self.path.exists():
            raise FileExistsError(f"journal {self.path} exists already")
        # made and locked under another name, then published: no importer sees it unlocked
        fresh = self.path.with_name(self.path.name + ".new")
        self._fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        header = {"store": _shown(location), "run_id": run_id, "host": socket.gethostname(),
                  "pid": self.pid, "created_unix": time.time()}  # fmt: skip
        _write_all(self._fd, _line(0, HEADER_OP, header))
        os.fsync(self._fd)
        os.rename(fresh, self.path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _reopen(self) -> bool:
        """Lock the journal at :attr:`path` for appending (waiting for an importer that holds
        it); False if there is none, or an importer took it meanwhile (then it is gone)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                end = os.lseek(fd, 0, os.SEEK_END)
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    _write_all(fd, b"\n")  # a torn tail stays a line of its own (skipped)
                self._fd = fd
                return True
        os.close(fd)
        return False

    def append(self, write: Write, *, sync: bool = False, n: int | None = None) -> int:
        """Write ``write`` as entry ``n`` (default: the next; ``fsync`` too if ``sync``); its
        number. A failed write (a full disk) is cut back to the last whole entry and noted in
        :attr:`broken`."""
        if os.getpid() != self.pid:
            return self.n
        if n is None:
            self.n += 1
            n = self.n
        if self.broken is None and self._fd >= 0:
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                _write_all(self._fd, _line(n, write.op, write.args()))
                if sync:
                    os.fsync(self._fd)
            except OSError as err:
                self.broken = err
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
        return n

    def close(self, *, remove: bool) -> None:
        """Release the journal (to importers), or delete it first if ``remove`` (all landed)."""
        if self._fd < 0 or os.getpid() != self.pid:
            return
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = -1


LAST_WORD_N = 2**62  # the entry number of a dead wrapper's watchdog: after any of the run's


def append_last_word(location: StoreLocation, run_id: str, write: Write) -> Path:
    """A dead wrapper's watchdog, the store unreachable: add ``write`` to the run's journal
    (a new one if every entry had landed) as entry :data:`LAST_WORD_N`; the journal's path.
    OSError if it cannot be written."""
    journal = JournalWriter(location, run_id, reopen=True)
    journal.append(write, sync=True, n=LAST_WORD_N)
    journal.close(remove=False)
    if journal.broken is not None:
        raise journal.broken
    return journal.path


@dataclass
class JournalFile:
    """A journal as read back: its valid entries ``(n, write)`` in order (the header skipped),
    and one line per torn or unreadable entry."""

    path: Path
    entries: list[tuple[int, Write]] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)


def read_journal(path: Path) -> JournalFile:
    """Parse the journal at ``path`` (see the module docstring)."""
    data = path.read_bytes()
    out = JournalFile(path)
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a whole line
    if tail:
        out.torn.append(f"{path}: the last entry is cut short ({len(tail)} bytes); skipped")
    for number, raw in enumerate(lines, 1):
        entry = _parse(raw)
        if isinstance(entry, str):
            out.torn.append(f"{path}: line {number} {entry}; skipped")
        elif entry["n"] != 0 or entry["op"] != HEADER_OP:
            try:
                out.entries.append((int(entry["n"]), WRITES[entry["op"]](**entry["args"])))
            except KeyError as err:
                out.torn.append(f"{path}: line {number} is an unknown write {err}; skipped")
            except (ValueError, TypeError) as err:
                out.torn.append(f"{path}: line {number} cannot be applied ({err}); skipped")
    return out


def _parse(raw: bytes) -> dict[str, Any] | str:
    """One line as ``{"n", "op", "args"}``, or why it is torn."""
    crc, _, body = raw.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return "fails its checksum (torn or damaged)"
        entry = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        return "is not a journal entry (torn or damaged)"
    if not isinstance(entry, dict) or not {"n", "op", "args"} <= set(entry):
        return "is not a journal entry (torn or damaged)"
    return entry


def pending_journals(store: str | os.PathLike[str] | StoreLocation | None = None) -> list[Path]:
    """The journals waiting for ``store`` (None: every store's), claimed ones included."""
    folders = [journal_dir(store)] if store is not None else sorted(
        p for p in journal_root().glob("*") if p.is_dir()
    )  # fmt: skip
    found: list[Path] = []
    for folder in folders:
        with contextlib.suppress(OSError):
            found += sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX)
                            or CLAIMED in p.name)  # fmt: skip
    return found


def has_pending(location: StoreLocation, run_id: str) -> bool:
    """Whether a journal of ``run_id`` for this store waits on this machine."""
    return any(p.name.startswith(run_id + SUFFIX) for p in pending_journals(location))


def waiting_stores() -> list[str]:
    """The stores (shown locations, from the journals' headers) with journals waiting here."""
    found: dict[str, None] = {}
    for path in pending_journals():
        with contextlib.suppress(OSError, TypeError), path.open("rb") as file:
            entry = _parse(file.readline().rstrip(b"\n"))
            if isinstance(entry, dict) and entry["op"] == HEADER_OP and "store" in entry["args"]:
                found.setdefault(str(entry["args"]["store"]))
    return list(found)


@contextlib.contextmanager
def claim(path: Path) -> Iterator[Path | None]:
    """Take the journal at ``path`` for importing: lock it (None if its writer or another
    importer holds it, or it is gone), rename it ``...claimed-<pid>``, yield the new path. The
    lock is held until the block ends."""
    fd, claimed = -1, None
    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:  # else another importer renamed it
            claimed = path.with_name(f"{path.name.split(CLAIMED)[0]}{CLAIMED}{os.getpid()}")
            os.rename(path, claimed)
    except OSError:
        claimed = None
    try:
        yield claimed
    finally:
        if fd >= 0:
            os.close(fd)

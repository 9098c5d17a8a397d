"""No command's output file ever replaces a store: one check before any file is written.

``export -o``, ``export --plot`` and every other option that names a file to write call
:func:`refuse_store_path` first. A path that is an SQLite database (its first 16 bytes are
``SQLite format 3\\0``: a greentrain store or any other application's), or the write-ahead log,
shared-memory or rollback journal of one, is refused with one line (exit 2) unless the user
passes ``--force``; the file is left untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

from greentrain.errors import ConfigError
from greentrain.store.sqlite import SQLITE_MAGIC

_COMPANIONS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database


def sqlite_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file whose header says SQLite (unreadable files count as not)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def store_file(path: str | os.PathLike[str]) -> Path | None:
    """The SQLite database ``path`` is, or is a companion file of (``-wal``, ``-shm``,
    ``-journal``); None when it is neither."""
    p = Path(path)
    if p.is_file() and sqlite_file(p):
        return p
    for suffix in _COMPANIONS:
        if p.name.endswith(suffix):
            main = p.with_name(p.name[: -len(suffix)])
            if main.is_file() and sqlite_file(main):
                return main
    return None


def refuse_store_path(path: str | os.PathLike[str], *, flag: str, force: bool = False) -> None:
    """Raise ConfigError (one line, exit 2) when ``path`` -- the value of option ``flag`` --
    is an SQLite database or one of its companion files, unless ``force``."""
    if force:
        return
    database = store_file(path)
    if database is None:
        return
    what = "an SQLite database (a run store?)"
    if Path(path) != database:
        what = f"a file of the SQLite database {database}"
    raise ConfigError(
        f"{flag} {path} is {what}; writing there would destroy it: give another file name, "
        "or pass --force to overwrite it"
    )

"""Where a store is: an SQLite file (a path) or a PostgreSQL database (a URL), and its secrets.

``--store`` and ``$GREENTRAIN_STORE`` take either. A value starting with ``postgresql://`` or
``postgres://`` is a PostgreSQL URL (libpq's form, ``postgresql://user[:password]@host[:port]/db
[?param=value...]``; ``?host=/path`` reaches a server on a UNIX socket); anything else is a
path to an SQLite file.

A URL may carry a password (better: ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads). It is
used to connect and nowhere else: :attr:`StoreLocation.shown` is the URL without it, and
:func:`redact` (:mod:`greentrain.record.secrets`, re-exported here) masks it, and any other
URL's password, token or ``--password`` value, in any text (a recorded command line, a config
value, an error message) before that text is stored or printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.secrets import HIDDEN, redact, redact_all

__all__ = [  # redact, redact_all and HIDDEN are re-exported from greentrain.record.secrets
    "DEFAULT_PATH",
    "ENV_STORE",
    "HIDDEN",
    "URL_SCHEMES",
    "StoreLocation",
    "default_path",
    "default_target",
    "is_url",
    "locate",
    "redact",
    "redact_all",
]

DEFAULT_PATH = Path("reports") / "greentrain.db"
ENV_STORE = "GREENTRAIN_STORE"
URL_SCHEMES = ("postgresql://", "postgres://")
_OTHER_URL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://")


def is_url(value: Any) -> bool:
    """Whether ``value`` names a PostgreSQL store (a ``postgresql://`` or ``postgres://`` URL)."""
    return isinstance(value, str) and value.strip().lower().startswith(URL_SCHEMES)


@dataclass(frozen=True)
class StoreLocation:
    """One store's place.

    Attributes:
        kind: ``"sqlite"`` or ``"postgresql"``.
        target: the path (SQLite) or the full URL, password included (PostgreSQL): what to
            connect with, never to show.
        shown: what messages and records say: the path, or the URL without its password.
        path: the SQLite file (None for PostgreSQL).
    """

    kind: str
    target: str = field(repr=False)
    shown: str
    path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "sqlite"


def default_target() -> str:
    """``$GREENTRAIN_STORE`` if set (a path or a URL), else ``./reports/greentrain.db``."""
    env = os.environ.get(ENV_STORE, "").strip()
    return env if env else str(DEFAULT_PATH)


def default_path() -> Path:
    """The default store as a path (``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``).

    For callers that only handle files; :func:`default_target` also returns URLs. A URL in
    ``$GREENTRAIN_STORE`` comes back without its password (as a path it names no file).
    """
    return Path(redact(default_target()))


def locate(store: str | os.PathLike[str] | StoreLocation | None) -> StoreLocation:
    """The :class:`StoreLocation` of ``--store`` (None: :func:`default_target`)."""
    if isinstance(store, StoreLocation):
        return store
    value = default_target() if store is None else store
    if isinstance(value, str) and is_url(value):
        url = value.strip()
        return StoreLocation("postgresql", url, redact(url))
    scheme = _OTHER_URL.match(str(value))
    if scheme:
        raise StoreError(
            f"--store {redact(str(value))}: a {scheme.group(1)}:// URL is not a store; pass an "
            "SQLite file path or a postgresql:// URL"
        )
    path = Path(value)
    return StoreLocation("sqlite", str(path), str(path), path)

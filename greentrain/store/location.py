"""Where a store is: an SQLite file (a path) or a PostgreSQL database (a URL), and its secrets.

``--store`` and ``$GREENTRAIN_STORE`` take either. A value starting with ``postgresql://`` or
``postgres://`` is a PostgreSQL URL (libpq's form, ``postgresql://user[:password]@host[:port]/db
[?param=value...]``; ``?host=/path`` reaches a server on a UNIX socket); anything else is a
path to an SQLite file.

A URL may carry a password (better: ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads). It is
used to connect and nowhere else: :attr:`StoreLocation.shown` is the URL without it, and
:func:`redact` strips it from any text (a recorded command line, a config value, an error
message) before that text is stored or printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("reports") / "greentrain.db"
ENV_STORE = "GREENTRAIN_STORE"
URL_SCHEMES = ("postgresql://", "postgres://")
HIDDEN = "***"

_USERINFO_PASSWORD = re.compile(r"(?i)\b(postgres(?:ql)?://[^:/@\s?#]*:)([^@\s/]*)(@)")
_QUERY_PASSWORD = re.compile(r"(?i)([?&\s]password=)('[^']*'|[^&\s]*)")


def is_url(value: Any) -> bool:
    """Whether ``value`` names a PostgreSQL store (a ``postgresql://`` or ``postgres://`` URL)."""
    return isinstance(value, str) and value.strip().lower().startswith(URL_SCHEMES)


def redact(text: Any) -> Any:
    """``text`` with any PostgreSQL URL's password replaced by ``***`` (non-text unchanged)."""
    if not isinstance(text, str) or "://" not in text and "password=" not in text.lower():
        return text
    return _QUERY_PASSWORD.sub(rf"\g<1>{HIDDEN}", _USERINFO_PASSWORD.sub(rf"\g<1>{HIDDEN}\3", text))


def redact_all(value: Any) -> Any:
    """:func:`redact` applied to every text in a JSON-like value (dicts, lists, strings)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


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
    path = Path(value)
    return StoreLocation("sqlite", str(path), str(path), path)

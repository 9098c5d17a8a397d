"""Open a store's connection: an SQLite file, or a PostgreSQL database for a URL.

psycopg (the PostgreSQL driver) takes a fifth of a second to import, so it is loaded only
when a store is a URL; a file store never pays for it.
"""

from __future__ import annotations

import os

from greentrain.errors import StoreError
from greentrain.store.connection import Connection
from greentrain.store.location import StoreLocation, locate
from greentrain.store.sqlite import SQLiteConnection


def connect(
    store: str | os.PathLike[str] | StoreLocation | None,
    *,
    read_only: bool = False,
    create: bool = True,
) -> Connection:
    """A connection to ``store`` (None: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``).

    Args:
        read_only: never write (SQLite opens the file ``mode=ro``; PostgreSQL sessions are
            read-only).
        create: create a missing SQLite file, or the schema in an empty PostgreSQL database
            (commands that only read pass False, so a mistyped ``--store`` is an error).

    Raises:
        StoreError: see the backends (:mod:`greentrain.store.sqlite`,
            :mod:`greentrain.store.postgres`).
    """
    location = locate(store)
    if location.is_sqlite:
        return SQLiteConnection(location, read_only=read_only, create=create)
    try:
        from greentrain.store.postgres import PostgresConnection  # psycopg: for URLs only
    except ImportError as err:
        raise StoreError(
            f"--store {location.shown} needs the PostgreSQL driver psycopg 3 ({err}); "
            "install it: pip install 'greentrain[postgres]'"
        ) from None
    return PostgresConnection(location, read_only=read_only, create=create)

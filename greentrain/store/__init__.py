"""The run store: every run's record, in an SQLite file (WAL mode) that many processes share.

* :mod:`~greentrain.store.connection`: find and open the file, one ``transaction()`` context,
  retries while another writer holds the lock.
* :mod:`~greentrain.store.schema`: tables, version, migrations.
* :mod:`~greentrain.store.reader` / :mod:`~greentrain.store.writer`: the :class:`Store` API.

Default path: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``. A file that is not SQLite,
or SQLite without our schema, raises :class:`~greentrain.errors.StoreError` with a one-line
message and is never touched. Readers get the run object of :mod:`greentrain.record.assemble`.
"""

from __future__ import annotations

from greentrain.errors import StoreError
from greentrain.store.connection import DEFAULT_PATH, ENV_STORE, default_path
from greentrain.store.recovery import spool_dir
from greentrain.store.schema import SCHEMA_VERSION
from greentrain.store.writer import Store

__all__ = [
    "DEFAULT_PATH",
    "ENV_STORE",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "default_path",
    "spool_dir",
]

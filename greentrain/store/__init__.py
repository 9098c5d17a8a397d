"""The run store: every run's record, in an SQLite file (WAL mode) that the processes of one
machine share, or in a PostgreSQL database that the machines of a cluster share.

* :mod:`~greentrain.store.location`: a path or a ``postgresql://`` URL, and its password kept
  out of every message and record.
* :mod:`~greentrain.store.connection` (+ :mod:`~greentrain.store.sqlite`,
  :mod:`~greentrain.store.postgres`): one ``write()``/``transaction()`` at a time, retries while
  the store is busy or unreachable, backend errors as one line.
* :mod:`~greentrain.store.schema`: tables, version, migrations (the same for both backends).
* :mod:`~greentrain.store.ops`: a run's writes, typed; :mod:`~greentrain.store.journal`: the
  per-run journal they are appended to before :meth:`Store.apply_entries` lands them, once.
* :mod:`~greentrain.store.reader` / :mod:`~greentrain.store.writer`: the :class:`Store` API;
  :mod:`~greentrain.store.merge`: several stores into one.

Default: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``. A file that is not SQLite, a
database without our schema, one we cannot reach or log in to, raises
:class:`~greentrain.errors.StoreError` with a one-line message and is never touched. Readers
get the run object of :mod:`greentrain.record.assemble` (a run group's of
:mod:`greentrain.record.group`).
"""

from __future__ import annotations

from greentrain.errors import StoreError
from greentrain.store.connection import DEFAULT_PATH, ENV_STORE, default_path, default_target
from greentrain.store.journal import journal_dir
from greentrain.store.location import StoreLocation, is_url, locate, redact, redact_all
from greentrain.store.schema import SCHEMA_VERSION
from greentrain.store.writer import Store

__all__ = [
    "DEFAULT_PATH",
    "ENV_STORE",
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "StoreLocation",
    "default_path",
    "default_target",
    "is_url",
    "journal_dir",
    "locate",
    "redact",
    "redact_all",
]

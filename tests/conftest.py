"""Test-wide isolation (no test writes the repository's store, inherits a wrapping run, shares
device locks or a journal folder with another test) and the store backends.

``store_target`` is parametrized over both backends: an SQLite file, and a fresh database on a
throwaway PostgreSQL server (one per session, :mod:`fixtures.pgserver`). Where PostgreSQL's
binaries are absent, the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

import pytest
from fixtures.pgserver import PgServer, binaries


@pytest.fixture(autouse=True)
def _isolated_greentrain_env(tmp_path_factory, monkeypatch):
    """Point the default store at a temporary file and drop any outer run's channel."""
    store_dir = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("GREENTRAIN_STORE", str(store_dir / "greentrain.db"))
    monkeypatch.setenv("GREENTRAIN_JOURNAL_DIR", str(store_dir / "journal"))
    monkeypatch.setenv("GREENTRAIN_LOCK_DIR", str(store_dir / "locks"))
    for name in ("GREENTRAIN_RUN", "GREENTRAIN_CHANNEL", "GREENTRAIN_LOG_ALL_RANKS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_PROCID", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session (skips when PostgreSQL is absent)."""
    _, why = binaries()
    if why:
        pytest.skip(why)
    server = PgServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.url(pg_server.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path) -> str:
    """A new store for each backend: an SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "g.db")
    return request.getfixturevalue("pg_url")

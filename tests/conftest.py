"""Test-wide isolation: no test writes the repository's store or inherits a wrapping run."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_greentrain_env(tmp_path_factory, monkeypatch):
    """Point the default store at a temporary file and drop any outer run's channel."""
    store_dir = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("GREENTRAIN_STORE", str(store_dir / "greentrain.db"))
    for name in ("GREENTRAIN_RUN", "GREENTRAIN_CHANNEL", "GREENTRAIN_LOG_ALL_RANKS"):
        monkeypatch.delenv(name, raising=False)
    yield

"""greentrain: energy and carbon instrumentation for deep-learning training.

Importing greentrain touches no hardware library and no network. ``greentrain.track`` (the
in-process meter for notebooks) and ``greentrain.client`` (what a training script calls) are
loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "track", "client"]


def __getattr__(name: str) -> Any:
    if name == "track":
        from greentrain.run import track

        return track
    if name == "client":
        import greentrain.client as client

        return client
    raise AttributeError(f"module 'greentrain' has no attribute {name!r}")

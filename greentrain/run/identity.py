"""A run's identity: its id, its default name, and the store it is written to."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from greentrain.store import Store


def new_run_id() -> str:
    """A 12-hex-digit random id (48 bits; prefixes identify runs on the command line)."""
    return uuid.uuid4().hex[:12]


def default_name(command: Sequence[str]) -> str:
    """A run's name from its command: the script's stem for ``python x.py``, else the program."""
    if not command:
        return "run"
    exe = Path(command[0]).name
    if exe.startswith("python"):
        for arg in command[1:]:
            if arg == "-c":
                return "python-c"
            if arg == "-m":
                continue
            if not arg.startswith("-"):
                return Path(arg).stem
    return exe


def open_store(store: Store | str | os.PathLike[str] | None) -> tuple[Store, bool]:
    """(the store, whether the caller owns it and must close it)."""
    if isinstance(store, Store):
        return store, False
    return Store(store), True

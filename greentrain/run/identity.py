"""A run's identity: its id and its default name."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path


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

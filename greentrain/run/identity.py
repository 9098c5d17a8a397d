"""A run's identity: its id, its default name and the run it is nested in; the host's identity."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from greentrain.protocol import ENV_RUN

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


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


def parent_run_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The run this process is nested in: ``GREENTRAIN_RUN``, which the wrapper of an outer
    ``greentrain run`` sets for every process of its job (None outside any run, or when the
    value is not a run id)."""
    value = (os.environ if environ is None else environ).get(ENV_RUN, "").strip()
    return value if _RUN_ID.match(value) else None


MACHINE_ID_FILES = (
    "/etc/machine-id",
    "/var/lib/dbus/machine-id",
    "/proc/sys/kernel/random/boot_id",
)


def host_identity(files: Sequence[str] = MACHINE_ID_FILES, hostname: str | None = None) -> str:
    """This host's identity: 16 hex digits of the machine id (else the boot id) with the
    hostname. Two machines never share it, even where they share a folder (an NFS home, a
    lock folder on a shared file system); the wrappers of one machine always do."""
    machine = ""
    for path in files:
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                machine = fh.read().strip()
        except OSError:
            continue
        if machine:
            break
    name = socket.gethostname() if hostname is None else hostname
    return hashlib.sha1(f"{machine}\0{name}".encode()).hexdigest()[:16]

"""Which processes a job left running when its command exited (see :mod:`greentrain.run.process`).

Three ways in: the job's process group; the wrapper's descendants outside the wrapper's own
group (the wrapper is their child subreaper, so a daemon that ``setsid`` and double-forked is
re-parented to it) unless they carry :data:`ENV_HELPER` set to the wrapper's pid, the mark of
its own helpers (a tracker's service; ``git`` and a meter's subprocess share its group anyway);
and every member of the job's cgroup where it has one. A daemon that cleared its environment
(``env -i``) carries no mark, so it is the job's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import psutil

ENV_HELPER = "GREENTRAIN_WRAPPER_PID"  # set in the wrapper's helpers, never in the job's


def find_leftovers(
    job_pgid: int, cgroup_pids: Iterable[int], spare: set[int]
) -> list[psutil.Process]:
    """The job's processes still around (see the module docstring), less ``spare`` pids."""
    own_group, own_pid = os.getpgrp(), os.getpid()
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(p.pid) != own_group and not helper_of(p, own_pid):
                    found[p.pid] = p
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(p.pid) == job_pgid:
                found[p.pid] = p
    for pid in cgroup_pids:
        with contextlib.suppress(psutil.Error):
            found.setdefault(pid, psutil.Process(pid))
    return [p for pid, p in found.items() if pid not in spare and pid != own_pid]


def helper_of(p: psutil.Process, wrapper_pid: int) -> bool:
    """Whether ``p`` is one of the wrapper's own helpers (:data:`ENV_HELPER`); a process whose
    environment cannot be read is not."""
    try:
        return p.environ().get(ENV_HELPER) == str(wrapper_pid)
    except psutil.Error:
        return False


def describe(p: psutil.Process, job_pgid: int) -> dict:
    """What the record says of a stopped process: ``pid``, ``name``, ``cmdline`` (200
    characters at most) and ``escaped`` (it had left the job's process group: ``setsid``)."""
    info: dict = {"pid": p.pid, "name": "", "cmdline": "", "escaped": True}
    with contextlib.suppress(psutil.Error, OSError):
        info["name"] = p.name()
        info["cmdline"] = " ".join(p.cmdline())[:200]
        info["escaped"] = os.getpgid(p.pid) != job_pgid
    return info


def alive(p: psutil.Process) -> bool:
    """Whether ``p`` still runs (a zombie has exited)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False

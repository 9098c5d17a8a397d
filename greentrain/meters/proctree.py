"""CPU time and memory of a process tree, the job-attributable quantities.

``tree_usage(pid)`` sums user + system CPU seconds (including reaped children, ``cutime`` and
``cstime``) and resident memory over ``pid`` and its live descendants; ``reaped_children_s()``
is this process's ``RUSAGE_CHILDREN`` total, where descendants it reaped itself end up.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

import psutil


def tree_usage(root_pid: int) -> tuple[float, float]:
    """(CPU seconds incl. reaped descendants, RSS bytes) of the live tree under ``root_pid``;
    (0, 0) when the process is gone."""
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return 0.0, 0.0
    cpu_s = rss = 0.0
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu_s += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return cpu_s, rss


def reaped_children_s() -> float:
    """CPU seconds of every child this process has reaped (``RUSAGE_CHILDREN``)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class JobCPU:
    """Cumulative CPU seconds of a job, never decreasing: a process tree spawned after this
    object (``pid``; its processes reaped by the caller are counted by ``reaped_s``), or this
    process's own tree (``pid=None``; the children it reaps count through RUSAGE_CHILDREN)."""

    def __init__(self, pid: int | None = None, reaped_s: Callable[[], float] | None = None) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self._own = pid is None
        self._reaped_s = reaped_s
        self._base_tree_s = tree_usage(self.pid)[0] if self._own else 0.0
        self._base_reaped_s = reaped_children_s()
        self._last = 0.0

    def pids(self) -> set[int]:
        """The pids of the job's live process tree."""
        try:
            root = psutil.Process(self.pid)
            return {root.pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.Error:
            return set()

    def seconds(self) -> float:
        tree_s, _ = tree_usage(self.pid)
        used = max(0.0, tree_s - self._base_tree_s)
        if self._reaped_s is not None:  # the caller reaped the job's processes itself
            used += self._reaped_s()
        elif not self._own:  # cutime of this process's own tree is in tree_usage already
            used += max(0.0, reaped_children_s() - self._base_reaped_s)
        self._last = max(self._last, used)
        return self._last

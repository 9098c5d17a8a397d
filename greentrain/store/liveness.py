"""Is the process that owns a ``running`` record still alive? (Then it is not a dead wrapper.)

A record stores its wrapper's pid, host and process start time; a pid alone could have been
reused by another process since. The start time that decides is the one a clock step cannot
change: clock ticks since boot, field 22 of ``/proc/PID/stat`` (:func:`start_ticks`), compared
exactly. Unix start seconds (psutil's ``create_time``, derived from the boot time the kernel
shifts with every wall-clock step) are only the fallback for records without ticks and for
systems without ``/proc``.
"""

from __future__ import annotations

import psutil

START_TIME_TOLERANCE_S = 2.0  # the fallback's: unix seconds drift with the wall clock


def process_started(pid: int) -> float | None:
    """Creation time (unix seconds) of process ``pid``; None if it does not exist."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22;
    unchanged by wall-clock steps); None without ``/proc`` or such a process."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read()
        # the command name (field 2) is in parentheses and may hold spaces or ')'
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, started: float | None, ticks: int | None = None) -> bool:
    """Whether ``pid`` on this host is still the process that started the run (``ticks``: its
    recorded :func:`start_ticks`; ``started``: its unix start time, for older records)."""
    if not pid:
        return False
    if ticks is not None:
        now = start_ticks(pid)
        if now is not None:
            return now == ticks
        if not psutil.pid_exists(pid):
            return False
    created = process_started(pid)
    if created is None:
        return False
    return started is None or abs(created - started) < START_TIME_TOLERANCE_S

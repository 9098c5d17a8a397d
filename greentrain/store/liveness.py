"""Is the process that owns a ``running`` record still alive? (Then it is not a dead wrapper.)

A record stores its wrapper's pid, host and process start time; a pid alone could have been
reused by another process since.
"""

from __future__ import annotations

import psutil

START_TIME_TOLERANCE_S = 2.0


def process_started(pid: int) -> float | None:
    """Creation time (unix seconds) of process ``pid``; None if it does not exist."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError):
        return None


def pid_alive(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` on this host is still the process that started the run."""
    if not pid:
        return False
    created = process_started(pid)
    if created is None:
        return False
    return started is None or abs(created - started) < START_TIME_TOLERANCE_S

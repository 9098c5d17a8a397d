"""Is the process that owns a ``running`` record still alive? (Then it is not a dead wrapper.)

A record stores its wrapper's pid, host and process start time; a pid alone could have been
reused by another process since. The start time that decides is the one a clock step cannot
change: clock ticks since boot, field 22 of ``/proc/PID/stat`` (:func:`start_ticks`), compared
exactly. Unix start seconds (psutil's ``create_time``, derived from the boot time the kernel
shifts with every wall-clock step) are only the fallback for records without ticks and for
systems without ``/proc``.

A pid means nothing on another host. There, a node is *lost* when its wrapper's heartbeat
(``runs.heartbeat_unix``, moved forward by every sample the wrapper stores, every ``--sample-s``
seconds) is older than :func:`heartbeat_bound_s`: :data:`NODE_LOST_PERIODS` sample periods plus
:data:`CLOCK_SLACK_S` for the hosts' clocks (NTP keeps them well within it). A run without a
heartbeat period (``--sample-s 0``, or recorded before schema v5) is never judged from afar.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import psutil

START_TIME_TOLERANCE_S = 2.0  # the fallback's: unix seconds drift with the wall clock
NODE_LOST_PERIODS = 3  # heartbeats a node may miss before a reader on another host marks it
CLOCK_SLACK_S = 5.0  # seconds added for the difference between two hosts' wall clocks


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


def heartbeat_bound_s(period_s: float) -> float:
    """Seconds without a heartbeat after which a node is lost (``period_s``: its period)."""
    return NODE_LOST_PERIODS * period_s + CLOCK_SLACK_S


def node_lost(row: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether a ``running`` run's wrapper has missed its heartbeats for longer than
    :func:`heartbeat_bound_s` (``row``: its ``runs`` row; ``now``: unix seconds)."""
    period = row.get("heartbeat_s")
    if row.get("status") != "running" or not isinstance(period, (int, float)) or period <= 0:
        return False
    beat = row.get("heartbeat_unix")
    if not isinstance(beat, (int, float)):
        beat = row.get("started_unix")
    if not isinstance(beat, (int, float)):
        return False
    now = time.time() if now is None else now
    return now - float(beat) > heartbeat_bound_s(float(period))


def lost_event(row: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The ``node lost`` event a reader stores on a run :func:`node_lost` found."""
    now = time.time() if now is None else now
    beat = row.get("heartbeat_unix") or row.get("started_unix")
    return {
        "t": now,
        "event": "node lost",
        "detail": f"no heartbeat from {row.get('host')} for {now - float(beat or now):.0f} s "
        f"(bound {heartbeat_bound_s(float(row.get('heartbeat_s') or 0)):.0f} s: "
        f"{NODE_LOST_PERIODS} sample periods + {CLOCK_SLACK_S:.0f} s); energy is its last "
        "sample",
        "heartbeat_unix": beat,
    }

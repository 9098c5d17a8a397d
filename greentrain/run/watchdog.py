"""The watchdog of a wrapped job: a dead wrapper never leaves the job running unmetered.

``greentrain run`` starts a small watchdog process in a session of its own (signals to the
wrapper's or the job's process group do not reach it) and keeps the write end of a pipe whose
read end only the watchdog holds. The wrapper tells it the job's process group and, when it
finishes normally, ``ok``. If the pipe closes without ``ok`` -- the wrapper was SIGKILLed, hit
by the OOM killer, or crashed -- the watchdog stops the job's group (SIGTERM, then SIGKILL
after the grace period) and marks the run ``interrupted`` in the store, with an event saying
so; its energy is the last sample the wrapper stored (every few seconds). Opening the store
lands what the wrapper's journal still held first; a store that does not answer gets the mark
through the journal (``greentrain store sync``).

The watchdog starts as a few lines of plain Python (:data:`BOOTSTRAP`, fast to start, holding
no module of the wrapper) and imports this module only when it has to act. It gets the store
in its environment (:data:`ENV_WATCHDOG_STORE`), not on its command line, which every user of
the machine can read: a PostgreSQL URL may hold a password.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time

from greentrain.run.jobcgroup import JobCgroup
from greentrain.store import Store, StoreLocation, locate
from greentrain.store.journal import append_last_word
from greentrain.store.ops import AbandonRun

_log = logging.getLogger("greentrain.run")
ENV_WATCHDOG_STORE = "GREENTRAIN_WATCHDOG_STORE"

# Runs as `python -c BOOTSTRAP RUN_ID GRACE_S` with the pipe's read end as fd 3 and the store
# in $GREENTRAIN_WATCHDOG_STORE.
BOOTSTRAP = """
import os, sys
buf, pgid, cgroup = b"", None, None
while True:
    try:
        data = os.read(3, 4096)
    except InterruptedError:
        continue
    if not data:
        break
    buf += data
    lines = buf.split(b"\\n")
    buf = lines.pop()
    for line in lines:
        if line.startswith(b"job "):
            pgid = int(line[4:])
        elif line.startswith(b"cgroup "):
            cgroup = os.fsdecode(line[7:])
        elif line == b"ok":
            sys.exit(0)
from greentrain.run.watchdog import rescue
rescue(os.environ["GREENTRAIN_WATCHDOG_STORE"], sys.argv[1], pgid, float(sys.argv[2]), cgroup)
"""


class Watchdog:
    """The wrapper's side: start the watchdog, tell it the job, tell it all went well."""

    def __init__(self, store: StoreLocation, run_id: str, grace_s: float) -> None:
        read_end, self._write_end = os.pipe()  # both close-on-exec: the job never holds them
        if read_end == 3:  # dup2(3, 3) would keep close-on-exec set
            read_end, old = os.dup(read_end), read_end
            os.close(old)
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-c", BOOTSTRAP, run_id, str(grace_s)],
                dict(os.environ, **{ENV_WATCHDOG_STORE: store.target}),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 3),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        finally:
            os.close(read_end)

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write_end, line.encode() + b"\n")

    def watch(self, pgid: int, cgroup: str | None = None) -> None:
        """The job's process group, and its cgroup where it has one (whatever left the group,
        a ``setsid`` daemon say, is still in it), to stop should the wrapper die."""
        self._send(f"job {pgid}")
        if cgroup:
            self._send(f"cgroup {cgroup}")

    def dismiss(self) -> None:
        """The wrapper finished its work: the watchdog exits without acting."""
        self._send("ok")
        with contextlib.suppress(OSError):
            os.close(self._write_end)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)  # it exits on its own; never wait for it


def stop_group(pgid: int, grace_s: float) -> bool:
    """SIGTERM the group, SIGKILL it if still there after ``grace_s``; True if it existed."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def stop_cgroup(path: str) -> int:
    """SIGKILL what is still in the job's cgroup (``cgroup.kill``, else one by one) and remove
    it once empty; how many processes were in it."""
    cgroup = JobCgroup(path)
    left = len(cgroup.pids())
    if left:
        cgroup.kill()
    cgroup.remove(timeout_s=5.0)
    return left


def rescue(
    store_path: str, run_id: str, pgid: int | None, grace_s: float, cgroup: str | None = None
) -> None:
    """The wrapper died: stop the job's group, then whatever of the job is still in its
    cgroup (processes that left the group), and mark the run interrupted."""
    stopped = stop_group(pgid, grace_s) if pgid else False
    escaped = stop_cgroup(cgroup) if cgroup else 0
    event = {
        "t": time.time(),
        "event": "wrapper died",
        "detail": (
            "the greentrain run process ended without finishing the record (killed or "
            "crashed); the watchdog "
            + ("stopped the job's process group" if stopped else "found no job running")
            + (f" and {escaped} processes left in the job's cgroup" if escaped else "")
            + "; energy is the last sample the wrapper stored"
        ),
    }
    write = AbandonRun(run_id, ended_unix=time.time(), event=event)
    try:
        with Store(store_path) as store:  # lands the dead wrapper's journal first
            store.write(write)
    except Exception as err:  # noqa: BLE001 - the store does not answer: the journal keeps it
        try:
            where = append_last_word(locate(store_path), run_id, write)
        except Exception as again:  # noqa: BLE001 - nobody is left to tell but the terminal
            _log.error("greentrain watchdog: could not mark run %s: %s; nor journal it: %s",
                       run_id, err, again)  # fmt: skip
            return
        _log.warning(
            "greentrain watchdog: run %s is marked interrupted in its journal %s (the store: %s); "
            "`greentrain store sync` lands it",
            run_id,
            where,
            err,
        )

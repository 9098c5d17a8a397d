"""Stops that stop: how a budget ends a job, escalating until it has ended.

A stop is a list of *steps*, each taken a grace period after the one before, until the owner of
the job says it has ended (:meth:`Escalation.finish`):

* ``greentrain run`` (:class:`GroupStop`): SIGINT, then SIGTERM, then SIGKILL to the job's
  process group -- and to every process of the job's own cgroup when it has one (one that is
  not the wrapper's), whose ``cgroup.kill`` ends it at the last step. SIGKILL cannot be
  ignored or trapped, so a job that ignores SIGINT (inherited ``SIG_IGN``: any ``cmd &`` from a
  non-interactive shell) and traps SIGTERM still ends after two grace periods.
* ``track()`` and ``greentrain train`` (:class:`InProcessStop`): the job is this process, so
  it cannot be killed without losing its record. A SIGINT handler of our own is installed in
  the main thread while the run is watched: a real SIGINT is passed on as it would have been
  (ignored when it was ignored, the job's own handler called when it had one), but the
  budget's SIGINT -- sent to the main thread with ``pthread_kill``, which also wakes a blocking
  call -- raises :class:`KeyboardInterrupt` whatever the inherited disposition. The first step
  gives a job's own SIGINT handler its chance (a graceful stop at the end of a step); the
  second raises KeyboardInterrupt in the job's thread asynchronously
  (``PyThreadState_SetAsyncExc``: it works outside the main thread too, past a handler that
  swallowed the first, and where an inherited signal mask blocks SIGINT -- then it is the first
  step too), waking it with the signal.

When every step has been taken and another grace period has passed with the job still going,
the escalation gives up: it says so at once (``on_give_up``), and the outcome records that the
stop did *not* happen in time (``stopped: false``) -- the run's status is then the job's own.

Times are monotonic seconds; the outcome's ``stopped_unix`` is a wall-clock label.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# where the cgroup v2 hierarchy is mounted: unified, or beside v1's controllers (hybrid)
CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))

Step = tuple[str, Callable[[], None]]


class Escalation:
    """Takes ``steps`` one grace period apart in a daemon thread until :meth:`finish`.

    Args:
        steps: (name, action) pairs, in order; the first is taken at once.
        grace_s: seconds between two steps, and after the last before giving up.
        on_step: called with each step's name after it is taken.
        on_give_up: called once when every step failed to end the job.
    """

    def __init__(
        self,
        steps: list[Step],
        grace_s: float,
        *,
        on_step: Callable[[str], None] = lambda name: None,
        on_give_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.steps = steps
        self.grace_s = grace_s
        self.on_step = on_step
        self.on_give_up = on_give_up
        self.taken: list[dict[str, Any]] = []  # {"step", "after_s"} per step taken
        self.gave_up = False
        self.requested_at: float | None = None  # monotonic
        self.ended_at: float | None = None
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the first step now and the others in turn (idempotent)."""
        with self._lock:
            if self._thread is not None or self._ended.is_set():
                return
            self.requested_at = time.monotonic()
            self._thread = threading.Thread(target=self._loop, name="greentrain-stop", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        for name, action in self.steps:
            with self._lock:
                if self._ended.is_set():
                    return
                action()
                self.taken.append({"step": name, "after_s": self._elapsed()})
            self.on_step(name)
            if self._ended.wait(self.grace_s):
                return
        with self._lock:
            if self._ended.is_set():
                return
            self.gave_up = True
        self.on_give_up()

    def _elapsed(self) -> float:
        return 0.0 if self.requested_at is None else time.monotonic() - self.requested_at

    def finish(self) -> dict[str, Any] | None:
        """The job has ended: take no further step. The stop's outcome (None if none was
        asked): ``stopped`` (ended before the escalation gave up), ``stop_s`` (seconds from the
        request to the end), ``steps`` taken."""
        with self._lock:
            if self._ended.is_set():
                first = False
            else:
                first = True
                self._ended.set()
                self.ended_at = time.monotonic()
            if self.requested_at is None:
                return None
            outcome = {
                "stopped": not self.gave_up,
                "stop_s": (self.ended_at or time.monotonic()) - self.requested_at,
                "steps": list(self.taken),
            }
        if first and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        return outcome


# -- greentrain run: the job's process group and cgroup ---------------------------------------
def own_cgroup(pid: int) -> Path | None:
    """The cgroup v2 directory of ``pid`` when it is not this process's own (the job was
    placed in a cgroup of its own), else None."""

    def path_of(p: int | str) -> str | None:
        try:
            text = Path(f"/proc/{p}/cgroup").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("0::"):
                return line[3:]
        return None

    theirs, ours = path_of(pid), path_of("self")
    if theirs is None or theirs == ours or theirs in ("", "/"):
        return None
    for root in CGROUP_ROOTS:
        if (root / "cgroup.procs").exists():
            folder = root / theirs.lstrip("/")
            return folder if (folder / "cgroup.procs").exists() else None
    return None


def _cgroup_pids(folder: Path) -> list[int]:
    try:
        return [int(line) for line in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


class GroupStop:
    """The budget's stop under ``greentrain run``: SIGINT, SIGTERM, SIGKILL to the job's
    process group (and cgroup), ``grace_s`` apart (see the module docstring).

    Args:
        pid: a callable giving the job's pid (its group's id), None before it started.
        grace_s: seconds between two signals.
    """

    def __init__(self, pid: Callable[[], int | None], grace_s: float) -> None:
        self._pid = pid
        self.grace_s = grace_s
        self.cgroup: Path | None = None

    def arm(self) -> None:
        """Nothing to prepare: signals to another process need no handler here."""

    def disarm(self) -> None:
        """Nothing to restore."""

    def escalation(self, **hooks: Any) -> Escalation | None:
        """The stop's steps for the job now running (None before it started)."""
        pid = self._pid()
        if pid is None:
            return None
        self.cgroup = own_cgroup(pid)
        steps = [(sig.name, self._sender(pid, sig)) for sig in
                 (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)]  # fmt: skip
        return Escalation(steps, self.grace_s, **hooks)

    def _sender(self, pid: int, sig: signal.Signals) -> Callable[[], None]:
        def send() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            if self.cgroup is None:
                return
            if sig == signal.SIGKILL:
                with contextlib.suppress(OSError):
                    (self.cgroup / "cgroup.kill").write_text("1")
            for member in _cgroup_pids(self.cgroup):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(member, sig)

        return send


# -- track() and greentrain train: this process ----------------------------------------------
def _raise_async(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in the thread ``thread_id`` at its next bytecode (None: cancel)."""
    target = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


class InProcessStop:
    """The budget's stop of this process's job (``track()``): see the module docstring.

    Args:
        owner: the thread that runs the job (``track()``'s block).
        grace_s: seconds between two steps.
    """

    def __init__(self, owner: threading.Thread, grace_s: float) -> None:
        self.owner = owner
        self.grace_s = grace_s
        self.requested = False  # the budget's SIGINT raises KeyboardInterrupt once set
        self._previous: Any = None
        self._installed = False
        self._blocked = False  # SIGINT blocked in the owner thread: raise, never signal
        self._armed = False
        self._lock = threading.Lock()

    @property
    def in_main_thread(self) -> bool:
        return self.owner is threading.main_thread()

    def arm(self) -> None:
        """Install the SIGINT handler (from the main thread; elsewhere nothing to install)."""
        self._armed = True
        if not self.in_main_thread or threading.current_thread() is not self.owner:
            return
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True
        # an inherited mask that blocks SIGINT would keep the signal pending for ever
        self._blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])

    def disarm(self) -> None:
        """The job has ended: no more interrupts; the previous SIGINT handler is back."""
        self._armed = False  # first: a budget SIGINT still pending now raises nothing
        with self._lock:
            if self.requested and self.owner.ident is not None:
                _raise_async(self.owner.ident, None)  # one still pending must not escape
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)  # runs pending handlers first
            self._installed = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.requested:
            if self._armed:
                raise KeyboardInterrupt
            return  # the job ended as the signal arrived: nothing left to stop
        previous = self._previous
        if previous is signal.SIG_IGN:
            return  # the process was told to ignore SIGINT: a real one still is
        if callable(previous):
            previous(signum, frame)
            return
        raise KeyboardInterrupt  # SIG_DFL or a C handler: end the block, keep the record

    def escalation(self, **hooks: Any) -> Escalation | None:
        """Two steps: ``interrupt`` (as a SIGINT would), then ``raise`` (past any handler)."""
        steps: list[Step] = [("interrupt", self._interrupt), ("raise", self._raise)]
        return Escalation(steps, self.grace_s, **hooks)

    def _interrupt(self) -> None:
        """First step: the SIGINT a shell's Ctrl-C would send (the job's own Python handler, if
        it has one, gets its chance); outside the main thread, KeyboardInterrupt in the block."""
        with self._lock:
            if not self._armed:
                return
            if self.in_main_thread and self._installed and not self._blocked:
                previous = self._previous
                if not callable(previous) or previous is signal.default_int_handler:
                    self.requested = True
                self._wake()
            else:
                self.requested = True
                if self.owner.ident is not None:
                    _raise_async(self.owner.ident, KeyboardInterrupt)

    def _raise(self) -> None:
        """Second step: KeyboardInterrupt in the job's thread, past any handler: through our
        SIGINT handler while it is installed, else raised asynchronously."""
        with self._lock:
            if not self._armed:
                return
            self.requested = True
            ours = self.in_main_thread and signal.getsignal(signal.SIGINT) == self._on_sigint
            if (self._blocked or not ours) and self.owner.ident is not None:
                _raise_async(self.owner.ident, KeyboardInterrupt)
            if self.in_main_thread and not self._blocked:
                self._wake()

    def _wake(self) -> None:
        if self.owner.ident is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pthread_kill(self.owner.ident, signal.SIGINT)

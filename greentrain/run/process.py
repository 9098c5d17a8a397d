"""The job's processes under ``greentrain run``: their own group, the terminal, signals, cleanup.

Like a job-control shell and like ``timeout``:

* The command starts as the leader of a **process group of its own**, with the signal
  dispositions it would get from a shell (Python's ignored SIGPIPE and SIGXFSZ reset to
  default) and an empty signal mask. A file that is executable but not a binary and has no
  ``#!`` line runs through ``/bin/sh``, as a shell would run it.
* When ``greentrain run`` is in the **foreground of a terminal**, that terminal is handed to the
  job's group: Ctrl-C, Ctrl-Z and reading the keyboard (a debugger) work as without the
  wrapper, and a Ctrl-C reaches the job once, from the kernel. Ctrl-Z stops the job and then the
  wrapper, so the shell gets its prompt back; ``fg`` continues both.
* A signal sent to the wrapper (``kill``, a scheduler) is forwarded to the job's **group**,
  exactly once; a terminating one starts a grace period (``grace_s``) after which the group is
  killed.
* When the command exits, processes it left behind are stopped: SIGTERM, then SIGKILL after
  the grace period, and each is named in the record (:attr:`Job.stopped`). Nothing keeps
  running unmetered. They are found three ways:

  - its process group;
  - the wrapper's descendants outside the wrapper's own group: on Linux the wrapper is a
    **child subreaper** (:func:`become_subreaper`), so a process that left the job's group
    and double-forked (``setsid``, a daemon) is re-parented to the wrapper, not to init. Such
    a descendant is the job's unless it carries :data:`ENV_HELPER` set to the wrapper's pid:
    :func:`become_subreaper` sets it in the wrapper's own environment, so the wrapper's own
    helpers (a tracker's service) inherit it, and the job's environment never has it. A
    daemon that cleared its environment (``env -i``) is thus the job's;
  - where cgroup v2 can be written (:mod:`greentrain.run.jobcgroup`), the **job's cgroup**:
    the command is moved into a cgroup of its own right after it starts, with whatever it
    forked meanwhile, so everything it ever starts is a member. Its CPU time covers every
    process (:meth:`Job.reaped_cpu_s`), and ``cgroup.kill`` stops what is left at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import psutil

from greentrain.meters.proctree import tree_usage
from greentrain.run.jobcgroup import JobCgroup
from greentrain.run.leftovers import ENV_HELPER, alive, describe, find_leftovers

_log = logging.getLogger("greentrain.run")
RESET_TO_DEFAULT = (signal.SIGPIPE, signal.SIGXFSZ)
TERMINATING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
DEFAULT_GRACE_S = 10.0
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def become_subreaper() -> bool:
    """Make orphaned descendants of this process re-parent to it (Linux; False elsewhere),
    and mark the processes it starts itself from now on (:data:`ENV_HELPER`) as its helpers,
    so that they are never taken for the job's (see the module docstring)."""
    os.environ[ENV_HELPER] = str(os.getpid())
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def subreaper_support() -> tuple[bool, str]:
    """(whether this system lets a process become a child subreaper, why not) for
    ``greentrain doctor``; it checks the call without changing this process."""
    if not sys.platform.startswith("linux"):
        return False, f"PR_SET_CHILD_SUBREAPER is Linux only (this is {sys.platform})"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
            return False, f"prctl failed: {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as err:
        return False, f"prctl is not callable: {err}"
    return True, "descendants that leave the job's group are re-parented to the wrapper"


@contextlib.contextmanager
def _ignoring(*signals: int) -> Iterator[None]:
    """Ignore ``signals`` in the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def foreground_terminal() -> int | None:
    """A descriptor of the controlling terminal when this process group is in its foreground."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


class Job:
    """One command's process group (see the module docstring)."""

    def __init__(self, command: Sequence[str], env: dict[str, str], grace_s: float) -> None:
        self.command = list(command)
        self.env = {k: v for k, v in env.items() if k != ENV_HELPER}
        self.grace_s = grace_s
        self.pid: int | None = None
        self.forwarded: list[int] = []  # signals sent to the group, in order
        self.leftovers_stopped = 0  # processes that outlived the command and were stopped
        self.stopped: list[dict] = []  # each: pid, name, cmdline, escaped (left its group)
        self.cgroup: JobCgroup | None = None
        self._reaped_cpu_s = 0.0  # CPU seconds of the job's processes this wrapper reaped
        self._tty: int | None = None
        self._kill_timer: threading.Timer | None = None

    def start(self) -> int | None:
        """Spawn the command; None when it runs, else the shell's exit code (127, 126)."""
        self.cgroup = JobCgroup.create()
        if self.cgroup is None:
            code = self._start()
        else:
            with self.cgroup.born_inside():  # the command starts inside: nothing slips out
                code = self._start()
            if self.cgroup.path is None:  # the wrapper could not step back out: give it up
                self.cgroup = None
        if code is not None:
            self._drop_cgroup()
            return code
        self._into_cgroup()
        self._take_terminal()
        return None

    def _start(self) -> int | None:
        path = shutil.which(self.command[0], path=self.env.get("PATH")) or self.command[0]
        try:
            self.pid = self._spawn(path, self.command)
        except FileNotFoundError:
            _log.error("greentrain: command not found: %s", self.command[0])
            return 127
        except PermissionError:
            _log.error("greentrain: permission denied: %s", self.command[0])
            return 126
        except OSError as err:
            if err.errno != errno.ENOEXEC:
                _log.error("greentrain: cannot run %s: %s", self.command[0], err)
                return 126
            # no #! line: run it as a shell script, as sh and bash do
            self.pid = self._spawn("/bin/sh", ["/bin/sh", path, *self.command[1:]])
        return None

    def _into_cgroup(self) -> None:
        """Make sure the command, and what it forked, is in the job's cgroup (where the wrapper
        could not step into the cgroup to spawn it there)."""
        if self.cgroup is None or not self.cgroup.add(self.pid):
            self._drop_cgroup()
            return
        with contextlib.suppress(psutil.Error):
            for p in psutil.Process(self.pid).children(recursive=True):
                self.cgroup.add(p.pid)

    def _drop_cgroup(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove(0)
            self.cgroup = None

    def _spawn(self, path: str, argv: list[str]) -> int:
        return os.posix_spawn(
            path, argv, self.env, setpgroup=0, setsigmask=(), setsigdef=RESET_TO_DEFAULT
        )

    # -- the terminal ---------------------------------------------------------------------------
    def _take_terminal(self) -> None:
        self._tty = foreground_terminal()
        if self._tty is None or self.pid is None:
            return
        with _ignoring(signal.SIGTTOU), contextlib.suppress(OSError):
            os.tcsetpgrp(self._tty, self.pid)
        # had the job read the terminal before it was its own, it stopped: continue it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGCONT)

    def _return_terminal(self) -> None:
        if self._tty is None:
            return
        with _ignoring(signal.SIGTTOU, signal.SIGTTIN), contextlib.suppress(OSError):
            os.tcsetpgrp(self._tty, os.getpgrp())

    def release(self) -> None:
        """Give the terminal back to the wrapper and close it (idempotent)."""
        self._return_terminal()
        if self._tty is not None:
            os.close(self._tty)
            self._tty = None
        if self._kill_timer is not None:
            self._kill_timer.cancel()

    # -- signals and waiting --------------------------------------------------------------------
    def forward(self, signum: int) -> None:
        """Send ``signum`` to the job's group, once; a terminating one arms the grace kill."""
        if self.pid is None:
            return
        self.forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
        if signum in TERMINATING and self._kill_timer is None:
            self._kill_timer = threading.Timer(self.grace_s, self._kill_group)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def reaped_cpu_s(self) -> float:
        """CPU seconds (user + system) of the job's processes outside its live process tree:
        with a cgroup, every such process (reaped, or escaped by ``setsid`` and a double fork;
        the cgroup's total less the live tree's), else those this wrapper reaped. Added to the
        live tree's time (:class:`~greentrain.meters.proctree.JobCPU`) it gives the job's."""
        if self.cgroup is None or self.pid is None:
            return self._reaped_cpu_s
        outside = self.cgroup.cpu_s() - tree_usage(self.pid)[0]
        return max(self._reaped_cpu_s, outside)

    def _reap(self, pid: int, options: int) -> tuple[int, int]:
        """``wait4`` one of the job's processes; its CPU time is kept for the job."""
        got, status, usage = os.wait4(pid, options)
        if got and not os.WIFSTOPPED(status):
            self._reaped_cpu_s += usage.ru_utime + usage.ru_stime
        return got, status

    def wait(self) -> int:
        """Wait for the command to exit; its ``waitpid`` status. Ctrl-Z is passed through."""
        while True:
            try:
                _, status = self._reap(self.pid, os.WUNTRACED)
            except ChildProcessError:
                return 0
            if os.WIFSTOPPED(status):
                self._suspend_with_job()
                continue
            return status

    def _suspend_with_job(self) -> None:
        """The job stopped (Ctrl-Z): stop the wrapper too, resume both on ``fg``."""
        if self._tty is None:
            return
        self._return_terminal()
        os.kill(os.getpid(), signal.SIGSTOP)
        self._take_terminal()

    # -- what the command left behind ------------------------------------------------------------
    def stop_leftovers(self, spare: Sequence[int] = ()) -> int:
        """SIGTERM what the command left running, SIGKILL after the grace period; reap them.

        ``spare``: pids to leave alone (the watchdog). Returns how many processes were stopped.
        """
        if self.pid is None:
            return 0
        cgroup_pids = self.cgroup.pids() if self.cgroup is not None else []
        found = find_leftovers(self.pid, cgroup_pids, set(spare))
        for p in found:  # exited orphans (zombies): reap them, count their CPU
            if not alive(p):
                with contextlib.suppress(ChildProcessError, OSError):
                    self._reap(p.pid, os.WNOHANG)
        left = [p for p in found if alive(p)]
        described = [describe(p, self.pid) for p in left]
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, still = psutil.wait_procs(left, timeout=self.grace_s)
        for p in still:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(still, timeout=self.grace_s)
        if self.cgroup is not None:  # anything started meanwhile, then the cgroup itself
            self.cgroup.kill()
            self.cgroup.remove(self.grace_s)
        for p in left:  # orphans re-parented to this subreaper: reap them, count their CPU
            with contextlib.suppress(ChildProcessError, OSError):
                self._reap(p.pid, os.WNOHANG)
        self.leftovers_stopped += len(left)
        self.stopped.extend(described)
        return len(left)


def exit_code_of(wait_status: int) -> tuple[int, int]:
    """(exit code as the shell reports it, signal that killed the process or 0)."""
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        return 128 + signum, signum
    return os.waitstatus_to_exitcode(wait_status), 0


def supervise(command: Sequence[str], env: dict[str, str], grace_s: float = DEFAULT_GRACE_S) -> int:
    """Run ``command`` as a :class:`Job` from the main thread and return its exit code.

    SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this process go to the job's group once (a
    grace period, then SIGKILL); what the command leaves running is stopped when it exits. For
    long-lived children such as ``greentrain app``'s Streamlit server.
    """
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING)
    job = Job(command, env, grace_s)
    try:
        cannot_start = job.start()
        if cannot_start is not None:
            return cannot_start
        while True:
            info = signal.sigtimedwait(TERMINATING, 0.2)
            if info is not None and info.si_signo in TERMINATING:
                job.forward(info.si_signo)
            pid, status = os.waitpid(job.pid, os.WNOHANG)
            if pid:
                return exit_code_of(status)[0]
    finally:
        job.release()
        job.stop_leftovers()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

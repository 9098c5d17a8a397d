"""A cgroup v2 of the job's own, where the system lets this process make one (Linux).

Every process the job starts stays in its cgroup whatever it does (``setsid``, a double
fork, ``env -i``), so the cgroup's ``cpu.stat`` ``usage_usec`` is the CPU time of every
process the job ever ran, and ``cgroup.kill`` (Linux 5.14+; else SIGKILL to each member)
stops all of them at once. The cgroup is made as a child of this process's own cgroup v2
(``/proc/self/cgroup``'s ``0::`` line, under the cgroup2 mount in ``/proc/self/mountinfo``);
it needs write access there: root, or a delegated subtree (``systemd-run --user -p
Delegate=yes``, a container with its own cgroup namespace). :func:`probe` says whether that
holds here and why not; ``greentrain doctor`` prints it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

_names = itertools.count()


@dataclass(frozen=True)
class Support:
    """Whether a job can get a cgroup of its own here (``where``: the parent cgroup's
    directory), and why not."""

    available: bool
    where: str
    reason: str
    fix: str


def _cgroup2_mount() -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split()[:1] == ["cgroup2"]:
                    return left.split()[4]
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


def probe() -> Support:
    """Whether :meth:`JobCgroup.create` can work here (it makes and removes a test cgroup)."""
    fix = "run as root, or in a delegated cgroup: systemd-run --user --scope -p Delegate=yes ..."
    mount, own = _cgroup2_mount(), _own_cgroup()
    if mount is None or own is None:
        return Support(False, "", "no cgroup v2 hierarchy is mounted for this process",
                       "mount cgroup2 (systemd does: unified or hybrid hierarchy)")  # fmt: skip
    parent = os.path.normpath(os.path.join(mount, own.lstrip("/")))
    test = os.path.join(parent, f"greentrain-probe-{os.getpid()}-{next(_names)}")
    try:
        os.mkdir(test)
    except OSError as err:
        return Support(False, parent, f"cannot create a cgroup in {parent}: {err.strerror}", fix)
    try:
        if not os.access(os.path.join(parent, "cgroup.procs"), os.W_OK):
            return Support(False, parent, f"cannot move processes: {parent}/cgroup.procs is "
                           "not writable", fix)  # fmt: skip
        kill = "cgroup.kill" if os.path.exists(os.path.join(test, "cgroup.kill")) else "SIGKILL"
        return Support(True, parent, f"each job runs in a cgroup under {parent} (stop: {kill})",
                       "")  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(test)


def _remove_stale(parent: str) -> None:
    """Remove the empty job cgroups of wrappers that died without removing theirs."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("greentrain-job-")]
    except OSError:
        return
    for name in names:
        try:
            owner = int(name.split("-")[2])
            os.kill(owner, 0)
        except (ValueError, IndexError, ProcessLookupError):
            with contextlib.suppress(OSError):  # EBUSY while processes are still in it
                os.rmdir(os.path.join(parent, name))
        except PermissionError:
            continue


class JobCgroup:
    """One job's cgroup (see the module docstring); :meth:`create` returns None where the
    system does not allow one."""

    def __init__(self, path: str, home: str | None = None) -> None:
        self.path = path
        self.home = home  # the cgroup the wrapper lives in (the job's cgroup's parent)
        self._final_usec: int | None = None

    @classmethod
    def create(cls) -> JobCgroup | None:
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        parent = os.path.normpath(os.path.join(mount, own.lstrip("/")))
        _remove_stale(parent)
        path = os.path.join(parent, f"greentrain-job-{os.getpid()}-{next(_names)}")
        try:
            os.mkdir(path)
        except OSError:
            return None
        return cls(path, parent)

    @contextlib.contextmanager
    def born_inside(self) -> Iterator[bool]:
        """The calling process steps into this cgroup for the block and back out after it, so
        a process it spawns in the block is *born* in the cgroup: nothing the new process
        forks, however early (a ``setsid`` daemon), can slip past a move made afterwards.
        Yields whether it stepped in. If stepping back out fails, the cgroup is given up
        (:attr:`path` None): it holds the wrapper, so it must never be killed."""
        me = str(os.getpid())
        if self.home is None or not self.add(os.getpid()):
            yield False
            return
        try:
            yield True
        finally:
            try:
                with open(os.path.join(self.home, "cgroup.procs"), "w", encoding="ascii") as fh:
                    fh.write(me)
            except OSError:
                self.path = None  # type: ignore[assignment]

    def add(self, pid: int) -> bool:
        """Move process ``pid`` into the cgroup; False when it is gone or cannot be moved."""
        try:
            with open(os.path.join(self.path, "cgroup.procs"), "w", encoding="ascii") as fh:
                fh.write(str(pid))
            return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The live processes in the cgroup."""
        try:
            with open(os.path.join(self.path, "cgroup.procs"), encoding="ascii") as fh:
                return [int(x) for x in fh.read().split()]
        except OSError:
            return []

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every process that ran in the cgroup."""
        if self._final_usec is not None:
            return self._final_usec / 1e6
        return self._usage_usec() / 1e6

    def _usage_usec(self) -> int:
        try:
            with open(os.path.join(self.path, "cpu.stat"), encoding="ascii") as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (``cgroup.kill``, or one by one)."""
        try:
            with open(os.path.join(self.path, "cgroup.kill"), "w", encoding="ascii") as fh:
                fh.write("1")
            return
        except OSError:
            pass
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the cgroup to empty, keep its CPU total, remove it."""
        deadline = time.monotonic() + timeout_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        usage = self._usage_usec()
        try:
            os.rmdir(self.path)
        except OSError:
            return False
        self._final_usec = usage
        return True

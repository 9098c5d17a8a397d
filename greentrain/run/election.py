"""One meter per physical device among the wrappers of a run group on one host.

Several ``greentrain run`` of one group can share a machine (``srun --ntasks-per-node=4``, or
two ranks' wrappers of a job on one node). Each would read the same GPUs' counters and the same
CPU packages, and the group's total would count them several times. Instead, the wrappers
*elect* one meter per device through file locks they share on the host:

* a lock file per (host, group, device) in a per-user folder (``$GREENTRAIN_LOCK_DIR``, else
  ``$XDG_RUNTIME_DIR/greentrain``, else ``/tmp/greentrain-<uid>``), taken with ``flock``
  (exclusive, non-blocking) the first time a wrapper reads the device. The host is its
  identity (:func:`greentrain.run.identity.host_identity`: the machine id, else the boot id,
  with the hostname), not the folder: hosts that share the folder (a lock folder on NFS, where
  ``flock`` reaches across machines) hold separate locks and each meters its own devices.
  The winner writes its run id in the file and keeps the lock for its life; the kernel
  releases it if it dies.
* Devices are GPUs by uuid and the host's CPU packages with their DRAM as one
  (:func:`greentrain.record.vocabulary.election_key`); the job's own process-tree estimate is
  not a device and every wrapper keeps it.
* A wrapper that lost a device drops its readings of it and records ``metered by run X``
  (:meth:`Election.summary`, stored with the run). It tries again every
  :data:`RETRY_S` seconds, so when the winner's run ends first, it takes the device over and
  counts it from that moment: a device is counted at most once at any time, never twice, and a
  hand-over loses at most that second.

Runs of no group are not elected: unrelated runs sharing a host split the machine's energy by
their use of it instead (:mod:`greentrain.record.split`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from greentrain.errors import ConfigError
from greentrain.record.readings import Readings
from greentrain.record.vocabulary import election_key
from greentrain.run.identity import host_identity

ENV_LOCK_DIR = "GREENTRAIN_LOCK_DIR"
RETRY_S = 1.0


def lock_dir() -> Path:
    """The per-user folder of election locks on this host (created private, 0700).

    Raises:
        ConfigError: the folder exists but is not ours (another user could fake elections).
    """
    given = os.environ.get(ENV_LOCK_DIR, "").strip()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if given:
        folder = Path(given)
    elif runtime and os.path.isdir(runtime) and os.stat(runtime).st_uid == os.getuid():
        folder = Path(runtime) / "greentrain"
    else:
        folder = Path("/tmp") / f"greentrain-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
    except OSError as err:
        raise ConfigError(f"cannot create the lock folder {folder} ({err}); set "
                          f"{ENV_LOCK_DIR} to a writable folder") from err  # fmt: skip
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError(
            f"the lock folder {folder} is not a folder of this user; remove it or set "
            f"{ENV_LOCK_DIR} to a private folder"
        )
    return folder


class Election:
    """This wrapper's part in its group's device election on this host."""

    def __init__(
        self, group_id: str, run_id: str, folder: Path | None = None, host: str | None = None
    ) -> None:
        digest = hashlib.sha1(group_id.encode()).hexdigest()[:16]
        self.group_id = group_id
        self.run_id = run_id
        self.host = host or host_identity()
        self.folder = (folder or lock_dir()) / self.host / digest
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.held: dict[str, tuple[int, float]] = {}  # key -> (lock fd, since unix time)
        self.elsewhere: dict[str, str] = {}  # key -> the run metering it
        self.taken_over: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _path(self, key: str) -> Path:
        return self.folder / (re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".lock")

    def _try(self, key: str) -> bool:
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.run_id.encode(), 0)
        self.held[key] = (fd, time.time())
        return True

    def _holder(self, key: str) -> str:
        for _ in range(20):  # the winner writes its id right after taking the lock
            with contextlib.suppress(OSError):
                text = self._path(key).read_text("utf-8").strip()
                if text:
                    return text
            time.sleep(0.005)
        return "unknown"

    def holds(self, key: str) -> bool:
        """Whether this wrapper meters ``key``; the first call for a key runs the election."""
        with self._lock:
            if key in self.held:
                return True
            if key in self.elsewhere or self._closed:
                return False
            if self._try(key):
                return True
            self.elsewhere[key] = self._holder(key)
            return False

    def retry(self) -> list[str]:
        """Try again for the devices another wrapper meters; the keys taken over now."""
        with self._lock:
            if self._closed:
                return []
            won = [key for key in list(self.elsewhere) if self._try(key)]
            for key in won:
                self.taken_over[key] = {"from": self.elsewhere.pop(key), "t": time.time()}
            return won

    def summary(self) -> dict[str, Any]:
        """What the run records: ``{"group", "host", "held": {key: since}, "elsewhere": {key:
        run}, "taken_over": {key: {"from", "t"}}}`` (``host``: the host identity it ran on)."""
        with self._lock:
            return {
                "group": self.group_id,
                "host": self.host,
                "held": {key: since for key, (_, since) in self.held.items()},
                "elsewhere": dict(self.elsewhere),
                "taken_over": dict(self.taken_over),
            }

    def close(self) -> None:
        """Release every device (after the final readings)."""
        with self._lock:
            self._closed = True
            for fd, _ in self.held.values():
                with contextlib.suppress(OSError):
                    os.close(fd)


class DeviceGate:
    """Keeps a meter set's readings to the devices its wrapper won, each counted only while
    held: a device taken over mid-run counts from then (its cumulative joules minus the joules
    it used while another wrapper metered it)."""

    def __init__(self, election: Election) -> None:
        self.election = election
        self._last: dict[tuple[str, str, str], float] = {}
        self._excluded: dict[tuple[str, str, str], float] = {}
        self._held_before: dict[tuple[str, str, str], bool] = {}

    def apply(self, readings: Readings) -> Readings:
        out: Readings = {}
        for meter, rows in readings.items():
            kept = []
            for r in rows:
                key = election_key(r.domain, r.device, r.method, r.detail)
                if key is None:
                    kept.append(r)
                    continue
                held = self.election.holds(key)
                ident = (meter, r.domain, r.device)
                if ident not in self._excluded:
                    self._excluded[ident] = 0.0 if held else r.energy_j
                elif not self._held_before[ident]:
                    self._excluded[ident] += r.energy_j - self._last[ident]
                self._last[ident] = r.energy_j
                self._held_before[ident] = held
                if held:
                    kept.append(replace(r, energy_j=r.energy_j - self._excluded[ident]))
            out[meter] = kept
        return out


class Retrier:
    """A thread that retries the lost devices every :data:`RETRY_S` and, on a take-over,
    calls ``on_taken`` (the meter set reads at once, so the device counts from then)."""

    def __init__(self, election: Election, on_taken: Callable[[list[str]], None]) -> None:
        self.election = election
        self.on_taken = on_taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="greentrain-election",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(RETRY_S):
            if self.election.elsewhere:
                won = self.election.retry()
                if won:
                    with contextlib.suppress(Exception):
                        self.on_taken(won)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

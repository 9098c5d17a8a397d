"""One process's connection to its ``greentrain run`` wrapper: never blocks, never gives up.

Each message is one JSON line on a UNIX stream socket (:mod:`greentrain.protocol`). The socket
is non-blocking, so a client call never waits for the wrapper:

* **Connected**: the line goes into the kernel's socket buffer (a few hundred kilobytes) and
  the call returns; tens of microseconds.
* **The wrapper is not reading** (stopped with SIGSTOP, a paused container, a swapped-out
  node), **or not reachable** (its listen backlog full, ``EAGAIN``; its socket gone; a broken
  connection): lines wait in this process's buffer, up to :data:`BUFFER_BYTES` (8 MiB), and
  every later call first tries to write them out. A lost connection is made again, at most
  once per back-off interval (:data:`BACKOFF_MIN_S` doubling to :data:`BACKOFF_MAX_S`). A line
  half-written on a connection that broke is sent again whole: the wrapper discards the
  partial line of a closed connection.
* **The buffer is full**: the new line is dropped and counted (reason ``buffer full``).
  Counted drops reach the wrapper as a ``drops`` message once the buffer has drained (at most
  every :data:`REPORT_EVERY_S` seconds, and at exit), and the run's record stores them as an
  event (``client entries dropped``) with the count per reason.
* **At exit** (``atexit``; in a ``multiprocessing`` child its exit finalizers, since such a
  child ends with ``os._exit``) the buffer is written out for up to :data:`EXIT_FLUSH_S`
  seconds. What the wrapper did not take by then is written to a spill file next to its socket
  (with the drop counts); the wrapper reads spill files when the job has ended, so a wrapper
  stopped for longer than the job still gets every entry, or counts what it lost.

After ``fork()`` the child starts with a fresh lock, no connection, an empty buffer (what it
held is the parent's to send) and counts of its own: a child forked while another thread was
sending never inherits a held lock, and logs on its own connection.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import logging
import os
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from greentrain import protocol
from greentrain.client.answers import Answers

log = logging.getLogger("greentrain.client")

BUFFER_BYTES = 8 << 20  # lines kept per process while the wrapper does not take them, bytes
BACKOFF_MIN_S = 0.05  # first wait before connecting again, seconds
BACKOFF_MAX_S = 2.0  # longest wait between connection attempts, seconds
EXIT_FLUSH_S = 5.0  # how long exit waits for the wrapper to take the buffer, seconds
REPORT_EVERY_S = 5.0  # drop counts are reported at most this often (and always at exit)
DRAIN_EVERY_S = 0.05  # a send reads the wrapper's unasked answers at most this often, seconds
DROP_BUFFER_FULL = "buffer full"
DROP_UNSENT_AT_EXIT = "unsent at exit"  # no spill file could be written either
_TRANSIENT = (OSError,)  # every socket error is worth a retry: the wrapper may come back


class Link:
    """The connection of this process (re-made in a forked child); see the module docstring."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._path = ""
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._head_sent = 0  # bytes of _pending[0] written on the current connection
        self._next_try = 0.0
        self._next_drain = 0.0  # monotonic s: when a send next reads unasked answers
        self._backoff = BACKOFF_MIN_S
        self._outage_warned = False
        self._exit_hooked = False
        self.source = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.dropped: collections.Counter[str] = collections.Counter()
        self._reported: dict[str, int] = {}
        self._last_report = -REPORT_EVERY_S
        self._spills = 0  # spill files written by this process
        self._inside = threading.local()  # .on: this thread is in (or waits for) the lock
        self._nested: collections.deque[tuple[str, bytes]] = collections.deque()
        self.answers = Answers()  # the wrapper's answers to window ends

    def after_fork_in_child(self) -> None:
        """Forget the parent's lock, connection, buffer and counts (see the module docstring)."""
        sock = self._sock
        self._reset()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()  # the child's copy only; the parent's connection stays open

    # -- sending --------------------------------------------------------------------------------
    def send(self, path: str, line: bytes) -> None:
        """Send one message line to the wrapper at ``path`` without waiting (see the module
        docstring); a line that finds the buffer full is dropped and counted.

        A call made while this thread is already inside one (a signal handler that logs) only
        queues its line; the interrupted call sends it before it returns."""
        if getattr(self._inside, "on", False):
            self._nested.append((path, line))
            return
        with self._held():
            self._send_locked(path, line)

    @contextlib.contextmanager
    def _held(self, timeout_s: float = -1) -> Iterator[bool]:
        """Hold the lock (False: not got within ``timeout_s``). This thread is marked as
        inside from before it waits for the lock until after it released it, so a nested
        call (a signal handler) only queues its line, and lines so queued are sent while the
        lock is held."""
        inside = self._inside
        inside.on = True
        try:
            if not self._lock.acquire(timeout=timeout_s):
                yield False
                return
            try:
                self._send_nested()
                yield True
                self._send_nested()
            finally:
                self._lock.release()
        finally:
            inside.on = False

    def _send_nested(self) -> None:
        while self._nested:
            self._send_locked(*self._nested.popleft())

    def _send_locked(self, path: str, line: bytes) -> None:
        if path != self._path:
            self._switch(path)
            self._hook_exit()
        if self._pending:
            self._pump()
        if self._pending and self._pending_bytes + len(line) > BUFFER_BYTES:
            self.dropped[DROP_BUFFER_FULL] += 1
            return
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pump() and self._report_due():
            self._queue_report()
            self._pump()

    def _report_due(self) -> bool:
        """New drops to report, and the last report :data:`REPORT_EVERY_S` ago or more."""
        if dict(self.dropped) == self._reported:
            return False
        return time.monotonic() - self._last_report >= REPORT_EVERY_S

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` entries refused before sending (reported with the buffer's drops)."""
        if getattr(self._inside, "on", False):  # nested in this thread's own call
            self.dropped[reason] += n
            return
        with self._held():
            self.dropped[reason] += n

    def answer(self, key: str, timeout_s: float) -> dict[str, Any] | None:
        """The wrapper's answer to window ``key``'s end, waiting at most ``timeout_s`` seconds
        (:mod:`greentrain.client.answers`); None when it has not come."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            with self._held(max(0.0, deadline - time.monotonic())) as held:
                if not held:
                    return None
                if self._pending:
                    self._pump()  # the window's end may still wait in the buffer
                self._drain()
                found = self.answers.take(key)
                sock = self._sock
            left = deadline - time.monotonic()
            if found is not None or left <= 0 or sock is None:
                return found
            with contextlib.suppress(OSError, ValueError):
                select.select([sock], [], [], min(left, 0.05))

    def _drain(self) -> None:
        """Read what the wrapper has answered so far (never waits). Caller holds the lock."""
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:  # the wrapper closed the connection
                self._close_socket()
                return
            self.answers.feed(data)

    def _switch(self, path: str) -> None:
        """Another run's socket (a test, a nested run): what the previous one did not take
        goes to its spill file; start over on the new one."""
        self._close_socket()
        if self._path:  # the previous run's lines and counts stay the previous run's
            self._spill()
            self.source = f"{os.getpid()}-{secrets.token_hex(4)}"
            self.dropped.clear()
            self._reported = {}
        self._pending.clear()
        self._pending_bytes = self._head_sent = 0
        self._path, self._next_try, self._backoff = path, 0.0, BACKOFF_MIN_S
        self._outage_warned = False  # an outage of the new run's wrapper is its own news

    def _queue_report(self) -> None:
        counts = dict(self.dropped)
        line = protocol.encode(protocol.drops_message(self.source, os.getpid(), counts))
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._reported = counts
        self._last_report = time.monotonic()

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_try:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self._path)
        except _TRANSIENT as err:  # EAGAIN: backlog full; ENOENT, ECONNREFUSED: not there
            sock.close()
            self._wait_longer(now, err)
            return False
        self._sock, self._head_sent, self._backoff = sock, 0, BACKOFF_MIN_S
        if self._outage_warned:
            log.warning("greentrain: reconnected to the wrapping `greentrain run`")
            self._outage_warned = False
        return True

    def _wait_longer(self, now: float, err: OSError) -> None:
        self._next_try = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        if not self._outage_warned:
            self._outage_warned = True
            log.warning(
                "greentrain: cannot reach the wrapping `greentrain run` (%s); entries wait in "
                "a %d MiB buffer and are sent when it answers",
                err.strerror or err,
                BUFFER_BYTES >> 20,
            )

    def _close_socket(self) -> None:
        self.answers.reset()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def _pump(self) -> bool:
        """Write buffered lines until all are written (True) or the wrapper does not take more
        now (False). Caller holds the lock."""
        if not self._pending:
            return True
        if self._sock is None and not self._connect():
            return False
        now = time.monotonic()
        if now >= self._next_drain:  # answers nobody asked for must not fill the wrapper's side
            self._next_drain = now + DRAIN_EVERY_S  # (a recv per call would double its cost)
            self._drain()
            if self._sock is None:
                return False
        while self._pending:
            line = self._pending[0]
            try:
                sent = self._sock.send(memoryview(line)[self._head_sent :])
            except (BlockingIOError, InterruptedError):
                return False
            except _TRANSIENT as err:  # EPIPE, ECONNRESET: the connection is gone
                self._close_socket()
                self._head_sent = 0  # the wrapper drops a partial line: send it whole again
                self._wait_longer(time.monotonic(), err)
                return False
            self._head_sent += sent
            if self._head_sent == len(line):
                self._pending.popleft()
                self._pending_bytes -= len(line)
                self._head_sent = 0
        return True

    # -- exit -----------------------------------------------------------------------------------
    def _hook_exit(self) -> None:
        if self._exit_hooked:
            return
        self._exit_hooked = True
        atexit.register(self.flush_at_exit)
        mp_util = sys.modules.get("multiprocessing.util")
        mp = sys.modules.get("multiprocessing")
        if mp_util is not None and mp is not None and mp.parent_process() is not None:
            mp_util.Finalize(None, self.flush_at_exit, exitpriority=100)

    def flush(self, timeout_s: float) -> bool:
        """Write out the buffer and the drop counts, waiting at most ``timeout_s`` seconds for
        the wrapper; True when nothing is left to send."""
        with self._held(max(0.0, timeout_s)) as held:
            return held and self._flush_locked(time.monotonic() + timeout_s)

    def _flush_locked(self, deadline: float) -> bool:
        while self._path:
            if not os.path.exists(self._path):  # the wrapper has closed its socket
                return False
            if self._pump():
                if dict(self.dropped) == self._reported:
                    return True
                self._queue_report()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._wait_writable(min(left, 0.05))
        return True

    def flush_at_exit(self, timeout_s: float = EXIT_FLUSH_S) -> None:
        """:meth:`flush`, then spill what is left next to the wrapper's socket (see the module
        docstring)."""
        with self._held(timeout_s) as held:
            if held and not self._flush_locked(time.monotonic() + timeout_s):
                self._spill()

    def _wait_writable(self, timeout_s: float) -> None:
        if self._sock is None:
            time.sleep(max(0.0, min(timeout_s, self._next_try - time.monotonic())))
            return
        with contextlib.suppress(OSError, ValueError):
            select.select([], [self._sock], [], timeout_s)

    def _spill(self) -> None:
        """Write the unsent lines and the drop counts to a spill file beside the socket."""
        if not self._pending and dict(self.dropped) == self._reported:
            return
        self._pending.append(
            protocol.encode(protocol.drops_message(self.source, os.getpid(), dict(self.dropped)))
        )
        folder = os.path.dirname(self._path)
        self._spills += 1
        name = f"{protocol.SPILL_PREFIX}{self.source}-{self._spills}.jsonl"
        final = os.path.join(folder, name)
        partial = final + ".part"
        try:
            with open(partial, "xb") as fh:
                fh.writelines(self._pending)
            os.replace(partial, final)
        except OSError as err:
            lost = len(self._pending) - 1
            if err.errno != errno.ENOENT or lost:
                log.warning(
                    "greentrain: %d entries could not reach the wrapping `greentrain run` "
                    "(%s) and are lost",
                    lost,
                    err.strerror or err,
                )
            self.dropped[DROP_UNSENT_AT_EXIT] += lost
        self._pending.clear()
        self._pending_bytes = self._head_sent = 0
        self._reported = dict(self.dropped)

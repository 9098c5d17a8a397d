"""The socket a wrapped job's client calls arrive on (see :mod:`greentrain.protocol`).

A listening UNIX stream socket in a private temporary directory, served by one thread that
reads every connection as data arrives, reads the meters the moment a window boundary arrives,
and hands each message to the recorder, in order (the recorder only queues store writes, so a
busy store delays nothing here). Messages are buffered per connection without copying (a 64 MB
line costs its size, not its square); a line over :data:`MAX_LINE_BYTES` is refused and counted.
When ``TMPDIR`` is too long for a socket path (108 bytes on Linux), ``/tmp`` is used. The listen
backlog is :data:`BACKLOG` (the kernel caps it at ``net.core.somaxconn``); a client that finds
it full retries (:mod:`greentrain.client.link`).

What was lost on the way is always in the record, as events
(:data:`~greentrain.record.drops.DROPS_EVENT`): the entries each client process dropped, by
reason, stored as its ``drops`` messages report them (counts are cumulative per process, so a
count that arrives twice is booked once), and the lines this server refused (one event, when
it closes).

When the job has ended, :meth:`ChannelServer.close` reads what its processes sent before they
exited, with the meters still running: every connection to its end, then the spill files of
clients that could not hand over their last lines. A burst of windows can leave thousands of
boundaries queued; they belong to the run, so they are applied like any other (each reads the
meters) for up to ``deadline_s`` seconds; then the recorder takes the run's end instant, and the
boundaries still queued are clipped to it (:meth:`Recorder.stop`, counted in an event), for up
to ``deadline_s`` more. A connection still sending after that (a process that outlived its job)
is cut, and counted (:data:`CUT_AT_END`).

Each window's end is answered on the connection it came from with the window's energy
(:data:`~greentrain.protocol.WINDOW_ANSWER`), so the callbacks can give it to the trainer's
logger. The answer is written without waiting: a connection whose socket buffer does not take
an answer whole gets no more answers (a client that never reads them), and nothing else is
held up.
"""

from __future__ import annotations

import collections
import os
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time

from greentrain import protocol
from greentrain.record.drops import DROPS_EVENT
from greentrain.run.recorder import Recorder

MAX_ERRORS = 10  # bad messages kept for the record; more are counted out
MAX_LINE_BYTES = 64 << 20  # a message larger than this is dropped (the client refuses 1 MiB+)
BACKLOG = 4096  # pending connections (capped by net.core.somaxconn)
REFUSED_OVERSIZE = "line over 64 MiB refused by the wrapper"
REFUSED_INVALID = "invalid message refused by the wrapper"
CUT_AT_END = "connection still sending when the wrapper ended"  # counted per connection
DRAIN_S = 5.0  # default seconds close() reads with live meters, then as long again clipped
DRAIN_QUIET_S = 0.1  # seconds an open connection may send nothing before the drain ends
_SUN_PATH_MAX = 100  # bytes of an AF_UNIX path we rely on (108 on Linux, 104 on macOS)


def _socket_dir() -> str:
    """A private directory whose socket path fits AF_UNIX's limit."""
    folder = tempfile.mkdtemp(prefix="greentrain-")
    if len(os.path.join(folder, "ch").encode()) <= _SUN_PATH_MAX:
        return folder
    os.rmdir(folder)
    return tempfile.mkdtemp(prefix="greentrain-", dir="/tmp")


class ChannelServer:
    """Receives client messages for one :class:`~greentrain.run.recorder.Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.dir = _socket_dir()
        self.path = os.path.join(self.dir, "ch")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(BACKLOG)
        self.listener.setblocking(False)
        self.errors: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = os.pipe()  # close() wakes the receiver through it
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._partial: dict[socket.socket, bytearray] = {}
        self.dropped = 0  # messages refused for their size
        self._reported: dict[str, dict[str, int]] = {}  # client source -> cumulative drops
        self._deadline = 0.0  # monotonic: until when close() reads with live meters
        self._refused: collections.Counter[str] = collections.Counter()  # reason -> lines
        self._skipping: set[socket.socket] = set()
        self._mute: set[socket.socket] = set()  # connections that took no more answers
        self._clip_s = DRAIN_S  # seconds close() reads past its deadline, clipped
        self._stop = threading.Event()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="greentrain-channel", daemon=True
        )

    def start(self) -> None:
        # The harness is mostly idle; a short GIL switch interval lets the receiver read
        # promptly while other threads (meters, store writes) hold the GIL.
        sys.setswitchinterval(0.0005)
        self._receiver.start()

    def _error(self, err: BaseException) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{type(err).__name__}: {err}")

    def _accept_line(self, line: bytes, conn: socket.socket | None = None) -> None:
        if not line.strip():
            return
        try:
            message = protocol.decode(line)
            if message["k"] == protocol.DROPS:
                self._book_drops(message)
            else:
                readings = self._boundary_readings() if protocol.is_boundary(message) else None
                answer = protocol.deliver(message, self.recorder, readings)
                if answer is not None and conn is not None:
                    self._answer(conn, protocol.window_answer_message(message["id"], answer))
        except Exception as err:  # noqa: BLE001 - a bad message must not stop the run
            self._error(err)
            self._refused[REFUSED_INVALID] += 1

    def _boundary_readings(self) -> dict | None:
        """The meters read now; None once the run's end is taken (the recorder clips to it).
        Past the drain's deadline the run's end is taken here."""
        if self._stop.is_set() and time.monotonic() > self._deadline:
            self.recorder.stop()
        return None if self.recorder.final is not None else self.recorder.meters.read()

    def _answer(self, conn: socket.socket, message: dict) -> None:
        """Write one answer line to ``conn`` if it takes it whole now; a connection that does
        not (a client that reads no answers) gets no more, so this thread never waits."""
        if conn in self._mute:
            return
        line = protocol.encode(message)
        try:
            sent = conn.send(line)
        except OSError:
            sent = 0
        if sent < len(line):
            self._mute.add(conn)

    def _book_drops(self, message: dict) -> None:
        """A client's cumulative drop counts: store what is new since its last report."""
        source, counts = str(message.get("src")), message.get("counts") or {}
        before = self._reported.setdefault(source, {})
        new = {}
        for reason, n in counts.items():
            if isinstance(n, int) and n > before.get(reason, 0):
                new[str(reason)] = n - before.get(reason, 0)
                before[reason] = n
        pid = message.get("pid")
        self._book(pid if isinstance(pid, int) else -1, new)

    def _book(self, pid: int, reasons: dict[str, int]) -> None:
        """One event of entries lost on the way (pid -1: counted by this server)."""
        if reasons:
            self.recorder.event_now(DROPS_EVENT, count=sum(reasons.values()),
                                    reasons=reasons, pid=pid)  # fmt: skip

    def _read_conn(self, conn: socket.socket) -> bool:
        """Read what ``conn`` has and apply its complete lines; False once it is closed."""
        try:
            data = conn.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn)
            self._partial.pop(conn, None)
            self._skipping.discard(conn)
            self._mute.discard(conn)
            conn.close()
            return False
        if conn in self._skipping:  # the rest of a refused line
            cut = data.find(b"\n")
            if cut < 0:
                return True
            self._skipping.discard(conn)
            data = data[cut + 1 :]
        buf = self._partial.setdefault(conn, bytearray())
        start = len(buf)
        buf += data
        end = buf.rfind(b"\n", start)
        if end < 0:  # no complete line yet (a large message arriving): no rescan of buf
            if len(buf) > MAX_LINE_BYTES:
                self._refuse(conn, buf)
            return True
        for line in bytes(buf[: end + 1]).split(b"\n")[:-1]:
            self._accept_line(line, conn)
        del buf[: end + 1]
        return True

    def _refuse(self, conn: socket.socket, buf: bytearray) -> None:
        """A line too large to be a client message: drop it, up to its newline."""
        self.dropped += 1
        self._refused[REFUSED_OVERSIZE] += 1
        self._error(ValueError(f"a client message over {MAX_LINE_BYTES} bytes was dropped"))
        buf.clear()
        self._skipping.add(conn)

    def _poll(self, timeout: float) -> int:
        """Accept and read what is ready (waiting at most ``timeout`` s); how many were."""
        ready = 0
        for key, _ in self._selector.select(timeout):
            if key.fileobj == self._wake_r:
                os.read(self._wake_r, 64)
                continue
            ready += 1
            if key.fileobj is self.listener:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                self._selector.register(conn, selectors.EVENT_READ, None)
            else:
                self._read_conn(key.fileobj)
        return ready

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll(1.0)
            except Exception as err:  # noqa: BLE001
                self._error(err)
        try:
            self._drain()
            self._read_spills()
        except Exception as err:  # noqa: BLE001
            self._error(err)

    def _open_conns(self) -> list:
        """The client connections not yet closed by their process."""
        own = (self.listener, self._wake_r)
        return [k.fileobj for k in self._selector.get_map().values() if k.fileobj not in own]

    def _drain(self) -> None:
        """Read every connection to its end (the job has exited); see the module docstring.

        Ends when every connection is closed, or when those left open (processes that
        outlived the job) have sent nothing for ``DRAIN_QUIET_S`` seconds: a pause between
        two sends on a loaded machine is not taken for the end of a connection."""
        cut = False
        while True:
            still_open = self._open_conns()
            if time.monotonic() > self._deadline + self._clip_s:
                cut = bool(still_open)  # still sending: what it has not sent is lost
                break
            wait = DRAIN_QUIET_S if still_open else 0.0
            began = time.monotonic()
            if not self._poll(wait) and time.monotonic() - began >= wait:
                break  # nothing arrived for a whole quiet period (not just the close() wake)
        for conn in self._open_conns():
            if cut or self._partial.get(conn):
                self._refused[CUT_AT_END] += 1

    def close(self, deadline_s: float = DRAIN_S, clip_s: float | None = None) -> None:
        """The job has exited: read what its processes sent, apply it (see the module
        docstring: live meters for ``deadline_s`` seconds, then clipped to the run's end for
        ``clip_s`` more, default as long again), count what was refused, remove the socket."""
        self._clip_s = max(0.0, deadline_s if clip_s is None else clip_s)
        self._deadline = time.monotonic() + max(0.0, deadline_s)
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._receiver.join(timeout=max(0.0, deadline_s) + self._clip_s + 5)
        if self._receiver.is_alive():  # applying one line took longer than the whole drain
            self._error(TimeoutError("the channel was still reading when the wrapper ended"))
        else:
            for key in list(self._selector.get_map().values()):
                if not isinstance(key.fileobj, int):
                    key.fileobj.close()
            self._selector.close()
            os.close(self._wake_r)
        os.close(self._wake_w)
        self._book(-1, dict(self._refused))
        shutil.rmtree(self.dir, ignore_errors=True)

    def _read_spills(self) -> None:
        """Apply the spill files of clients that exited before handing over every line."""
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return
        for name in names:
            if name.startswith(protocol.SPILL_PREFIX) and name.endswith(".jsonl"):
                try:
                    with open(os.path.join(self.dir, name), "rb") as fh:
                        for line in fh:
                            self._accept_line(line)
                except OSError as err:
                    self._error(err)

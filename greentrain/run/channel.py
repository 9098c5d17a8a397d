"""The socket a wrapped job's client calls arrive on (see :mod:`greentrain.protocol`).

A listening UNIX stream socket in a private temporary directory, served by two threads: the
receiver reads every connection as data arrives and reads the meters the moment a window
boundary arrives (so a window's energy is not delayed by store writes); the writer applies the
messages to the recorder, in order.
"""

from __future__ import annotations

import os
import queue
import selectors
import shutil
import socket
import sys
import tempfile
import threading

from greentrain import protocol
from greentrain.record.readings import Readings
from greentrain.run.recorder import Recorder

MAX_ERRORS = 10  # bad messages kept for the record; more are counted out


class ChannelServer:
    """Receives client messages for one :class:`~greentrain.run.recorder.Recorder`."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.dir = tempfile.mkdtemp(prefix="greentrain-")
        self.path = os.path.join(self.dir, "ch")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.errors: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._partial: dict[socket.socket, bytes] = {}
        self._queue: queue.SimpleQueue[tuple[dict, Readings | None] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="greentrain-channel", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_loop, name="greentrain-writer", daemon=True
        )

    def start(self) -> None:
        # The harness is mostly idle; a short GIL switch interval lets the receiver read
        # promptly while the writer thread holds the GIL.
        sys.setswitchinterval(0.0005)
        self._writer.start()
        self._receiver.start()

    def _error(self, err: BaseException) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{type(err).__name__}: {err}")

    def _accept_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = protocol.decode(line)
            readings = self.recorder.meters.read() if protocol.is_boundary(message) else None
        except Exception as err:  # noqa: BLE001 - a bad message must not stop the run
            self._error(err)
            return
        self._queue.put((message, readings))

    def _read_conn(self, conn: socket.socket) -> bool:
        """Read what ``conn`` has; False once it is closed."""
        try:
            data = conn.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(conn)
            self._partial.pop(conn, None)
            conn.close()
            return False
        buf = self._partial.get(conn, b"") + data
        *lines, rest = buf.split(b"\n")
        self._partial[conn] = rest
        for line in lines:
            self._accept_line(line)
        return True

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self.listener:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                self._selector.register(conn, selectors.EVENT_READ, None)
            else:
                self._read_conn(key.fileobj)

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll(0.1)
            except Exception as err:  # noqa: BLE001
                self._error(err)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            message, readings = item
            try:
                protocol.deliver(message, self.recorder, readings)
            except Exception as err:  # noqa: BLE001 - a bad message must not stop the run
                self._error(err)

    def close(self) -> None:
        """Read what the job's processes sent before exiting, apply it, remove the socket."""
        self._stop.set()
        self._receiver.join(timeout=5)
        # the job has exited: drain pending connections and data until nothing is left
        while True:
            keys = self._selector.select(0)
            if not keys:
                break
            self._poll(0)
        self._queue.put(None)
        self._writer.join()
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()
        self._selector.close()
        shutil.rmtree(self.dir, ignore_errors=True)

"""What the wrapper answers when a window closes: that window's energy, back in the job.

Under ``greentrain run`` the wrapper reads the meters when a window's end arrives and answers
on the same connection with the window's best figure per domain and the run's carbon factors
(:data:`greentrain.protocol.WINDOW_ANSWER`). :class:`Answers` keeps the answers that arrived
(at most :data:`MAX_KEPT`, the oldest forgotten first: a script that never asks for them does
not grow without end); :class:`WindowHandle` is what ``with client.window(...) as w`` gives, and
``w.answer(timeout_s)`` the answer once the window has closed.

Inside :func:`greentrain.run.track` the answer is there the moment the window closes; under
``greentrain run`` it arrives within milliseconds unless the wrapper is busy, stopped or gone,
so :meth:`WindowHandle.answer` waits at most the time it is given and returns None when it did
not come. An answer holds the window's energy as measured: a domain no meter measured has
``energy_j`` None, never 0.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

from greentrain import protocol

MAX_KEPT = 256  # answers kept until asked for


class Answers:
    """Answers that arrived on one connection, by window key."""

    def __init__(self) -> None:
        self._kept: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        """Bytes read from the connection; complete lines become answers (anything that is not
        an answer is ignored)."""
        self._partial += data
        *lines, rest = bytes(self._partial).split(b"\n")
        self._partial = bytearray(rest)
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a line cut short by a connection that broke
            if isinstance(message, dict) and message.get("k") == protocol.WINDOW_ANSWER:
                self._kept[str(message.get("id"))] = message
                while len(self._kept) > MAX_KEPT:
                    self._kept.popitem(last=False)

    def reset(self) -> None:
        """A new connection: a partial line of the old one is dropped."""
        self._partial.clear()

    def take(self, key: str) -> dict[str, Any] | None:
        return self._kept.pop(key, None)


class WindowHandle:
    """One window as ``with client.window(...) as w`` gives it.

    ``key``: the window's key (unique in the process); :meth:`answer` its energy once it has
    closed (None outside a run, before it closed, or when no answer came in time).
    """

    def __init__(
        self, key: str, name: str, fetch: Callable[[str, float], dict[str, Any] | None] | None
    ) -> None:
        self.key = key
        self.name = name
        self._fetch = fetch
        self._answer: dict[str, Any] | None = None
        self.closed = False

    def settle(self, answer: dict[str, Any] | None) -> None:
        """The window closed; ``answer`` is its energy when it is known at once (in-process)."""
        self.closed = True
        if answer is not None:
            self._answer = answer
            self._fetch = None

    def answer(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The window's answer (see the module docstring), waiting at most ``timeout_s``
        seconds for it; None when it has not come (ask again later: a late one is kept)."""
        if self._answer is None and self.closed and self._fetch is not None:
            self._answer = self._fetch(self.key, timeout_s)
        return self._answer

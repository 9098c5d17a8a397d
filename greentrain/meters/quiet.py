"""Silencing a chatty library's prints in one thread without touching the others' output.

CodeCarbon and the ``amdsmi`` module it imports print to stdout and stderr while they start.
A meter may start in a background thread while the job (``track()``) or the wrapper prints,
so swapping ``sys.stdout`` process-wide (``contextlib.redirect_stdout``) would swallow their
output too. :func:`quiet_thread` instead wraps ``sys.stdout`` and ``sys.stderr`` once in a
stream that drops what the *quieted* threads write and passes everything else through.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

_quiet_idents: set[int] = set()
_lock = threading.Lock()


class _ThreadFilteredStream:
    """A text stream that drops writes from quieted threads (everything else is delegated)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        if threading.get_ident() in _quiet_idents:
            return len(text)
        return self._inner.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _install() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ThreadFilteredStream):
            setattr(sys, name, _ThreadFilteredStream(stream))


@contextlib.contextmanager
def quiet_thread() -> Iterator[None]:
    """Drop what this thread prints to sys.stdout/sys.stderr inside the block."""
    with _lock:
        _install()
        _quiet_idents.add(threading.get_ident())
    try:
        yield
    finally:
        with _lock:
            _quiet_idents.discard(threading.get_ident())

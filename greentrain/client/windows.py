"""Which window a logged entry belongs to: windows are per thread of control.

A window opened with ``client.window(...)`` applies to what the same thread (or asyncio task:
the open windows live in a :class:`contextvars.ContextVar`, and a task starts with a copy of
the context it was created in) logs until it closes. Windows may nest; an entry carries the
innermost one.

A thread that has no window open of its own (a metrics thread, a prefetcher) logs into the
**main thread's** innermost open window, or into none when the main thread has none: the main
thread's loop is the training's phase structure (``epoch``, ``eval``), and a helper thread's
entries belong to the phase the training is in. A window opened in another non-main thread
never applies to anyone but that thread.
"""

from __future__ import annotations

import contextvars
import threading

_open: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "greentrain_windows", default=()
)


class Windows:
    """The open windows of one process (keys are unique per process)."""

    def __init__(self) -> None:
        self._main: dict[str, str] = {}  # key -> name, windows opened by the main thread
        self._lock = threading.Lock()

    def enter(self, key: str, name: str) -> contextvars.Token:
        """Open window ``key`` named ``name`` for the calling thread; pass the token to
        :meth:`leave`."""
        if threading.current_thread() is threading.main_thread():
            with self._lock:
                self._main[key] = name
        return _open.set((*_open.get(), name))

    def leave(self, key: str, token: contextvars.Token) -> None:
        """Close window ``key`` (opened by :meth:`enter` in this thread)."""
        with self._lock:
            self._main.pop(key, None)
        try:
            _open.reset(token)
        except ValueError:  # closed in another context than it opened in (a generator moved)
            names = _open.get()
            _open.set(names[:-1])

    def current(self) -> str | None:
        """The window an entry logged now by this thread belongs to (see the module
        docstring)."""
        own = _open.get()
        if own:
            return own[-1]
        if threading.current_thread() is threading.main_thread():
            return None
        with self._lock:
            return next(reversed(self._main.values()), None) if self._main else None

    def after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held)."""
        self._lock = threading.Lock()

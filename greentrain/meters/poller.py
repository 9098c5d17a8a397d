"""A daemon thread that calls one function every few seconds until stopped.

The nvml (power sampling), rapl (counter wrap guard) and estimate (CPU time and RSS sampling)
meters poll their source between reads; this is their one polling loop. The first exception
the function raises stops the polling and is kept in :attr:`Poller.error` for the meter to
surface at its next ``read()``; nothing is printed from the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Poller:
    """Call ``fn`` every ``interval_s`` seconds in a daemon thread named ``name``."""

    def __init__(self, fn: Callable[[], None], interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"poll interval must be > 0 seconds, got {interval_s}")
        self._fn = fn
        self.interval_s = interval_s
        self.name = name
        self.error: Exception | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling (the first call comes ``interval_s`` seconds from now)."""
        if self._thread is not None:
            raise RuntimeError(f"poller {self.name} already started")
        self.error = None
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self._fn()
            except Exception as err:  # noqa: BLE001 - kept for the meter's next read()
                self.error = err
                return

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop polling and wait up to ``timeout_s`` seconds for the thread (idempotent)."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

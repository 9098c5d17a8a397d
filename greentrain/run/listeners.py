"""Others who follow a run as it goes: mirrors to trackers (MLflow, W&B), forecasts, budgets.

A listener is any object with some of these methods, each taking one event dict:

* ``on_config(event)``: ``{"run_id", "params"}`` -- what the script passed to ``client.config``;
* ``on_window(event)``: ``{"run_id", "index", "name", "info", "started_unix", "ended_unix",
  "duration_s", "energy": {domain: figure}, "metrics": [entries logged in it]}`` when a window
  (an epoch, an evaluation) closes; ``energy`` has the best figure per domain
  (:func:`greentrain.record.ranking.select_best`), joules; ``run_energy`` the same for the
  whole run so far (at the window's end);
* ``on_sample(event)``: ``{"run_id", "group", "node", "t", "readings", "meters"}`` at each
  sample of the run's timeline (every ``sample_s`` seconds, and at the end): ``readings`` are
  every meter's cumulative readings since the run's start, ``meters`` the meters' statuses
  (what :func:`~greentrain.record.ranking.select_best` takes), ``group``/``node`` the run
  group's id and this wrapper's rank (None outside a group);
* ``on_end(event)``: ``{"run_id", "status", "exit_code", "record"}`` when the run is final.

Events are delivered in order by one thread of their own (:class:`Fanout`), so a slow listener
(a tracker writing files) never delays the job, the meters or the store. A listener that raises
is reported once on stderr and gets no further events; the others carry on. Before the record's
end is written the recorder waits (:meth:`Fanout.drain`, bounded) until every event queued so
far has been delivered, so what listeners add to the run (a forecast, a budget's event) lands
with it rather than after the run's writes have closed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from typing import Any

_log = logging.getLogger("greentrain.run")
KINDS = ("on_config", "on_window", "on_sample", "on_end")
_BARRIER = "barrier"  # an internal event: the thread sets it once what came before is delivered


class Fanout:
    """Delivers events to listeners from one background thread."""

    def __init__(self, listeners: Iterable[Any] = ()) -> None:
        self.listeners = list(listeners)
        self.failed: dict[int, str] = {}  # id(listener) -> what went wrong
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if self.listeners:
            self._thread = threading.Thread(target=self._loop, name="greentrain-fanout",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def emit(self, kind: str, event: dict[str, Any]) -> None:
        """Queue ``event`` for every listener's ``kind`` method; returns at once."""
        if self._thread is not None:
            self._queue.put((kind, event))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, event = item
            if kind == _BARRIER:
                event.set()
                continue
            for listener in self.listeners:
                handler = getattr(listener, kind, None)
                if handler is None or id(listener) in self.failed:
                    continue
                try:
                    handler(event)
                except Exception as err:  # noqa: BLE001 - one listener must not stop the rest
                    self.failed[id(listener)] = f"{type(err).__name__}: {err}"
                    _log.warning(
                        "greentrain: %s stopped following the run (%s)",
                        type(listener).__name__,
                        self.failed[id(listener)],
                    )

    def drain(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` seconds until every event emitted so far has been delivered;
        whether it was (a listener still busy is said in one line)."""
        if self._thread is None or not self._thread.is_alive():
            return True
        delivered = threading.Event()
        self._queue.put((_BARRIER, delivered))
        if delivered.wait(timeout_s):
            return True
        _log.warning("greentrain: a listener was still busy after %.0f s; what it adds to the run "
                     "from now on is not stored", timeout_s)  # fmt: skip
        return False

    def close(self, timeout_s: float = 60.0) -> None:
        """Deliver what is queued (waiting at most ``timeout_s``), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)

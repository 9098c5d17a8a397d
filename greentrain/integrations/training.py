"""What the training callbacks share, free of any framework: a run, one window per phase, and
each closed window's energy back in the training process.

:class:`TrainingRun` is driven by the framework's hooks (``start`` at train start, ``begin`` and
``end`` around each epoch or evaluation, ``log`` with the trainer's metrics, ``finish`` at train
end or when training raises). Where its run comes from decides what it can give back:

* **own** -- no ``greentrain run`` wraps the process and no :func:`greentrain.run.track` is
  open: it opens ``track()`` at train start and closes it at train end (``finished``;
  ``interrupted`` after Ctrl-C or SIGTERM/SIGHUP; ``failed`` when training raises). A listener
  (:mod:`greentrain.run.listeners`) hands it each closed window's best figure per domain, so
  :meth:`TrainingRun.end` returns the window's energy (J, kWh) and CO2e for the trainer's logger.
* **outer** -- under ``greentrain run`` (or inside a ``track()`` the script opened): windows and
  metrics go to that run through :mod:`greentrain.client`. The wrapper reads the meters in
  another process, so the energy of a window is not known here: :meth:`TrainingRun.end` returns
  None (nothing is logged rather than zeros) and one line on stderr says where to look.
* **off** -- not the main process of a distributed job (rank zero only): nothing at all.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrain import client
from greentrain.protocol import ENV_RUN
from greentrain.run import RunOptions, track
from greentrain.units import joules_to_kwh

logger = logging.getLogger(__name__)

WAIT_S = 10.0  # how long end() waits for the run's listener thread to deliver a window
OUTER_NOTE = (
    "greentrain: the energy of each epoch is measured by the wrapping `greentrain run` in "
    "another process and is not known here, so none is logged to the trainer's logger; "
    "it is in the run's record (greentrain show {run})"
)


@dataclass(frozen=True)
class WindowEnergy:
    """One closed window's energy: the sum of its domains' best figures.

    ``energy_j`` is None when no meter measured any domain in it (never 0 for "unknown");
    ``co2_g`` is None without energy or without a carbon intensity.
    """

    name: str
    index: int
    energy_j: float | None
    co2_g: float | None
    estimated: bool
    duration_s: float | None
    sources: dict[str, str]

    @property
    def energy_kwh(self) -> float | None:
        return None if self.energy_j is None else joules_to_kwh(self.energy_j)

    def metrics(self, prefix: str = "energy/") -> dict[str, float]:
        """``{"energy/<name>_j", "energy/<name>_kwh", "energy/<name>_co2_g"}`` (those known)."""
        out = {}
        if self.energy_j is not None:
            out[f"{prefix}{self.name}_j"] = self.energy_j
            out[f"{prefix}{self.name}_kwh"] = joules_to_kwh(self.energy_j)
        if self.co2_g is not None:
            out[f"{prefix}{self.name}_co2_g"] = self.co2_g
        return out


class _Windows:
    """The run's listener: keeps each closed window's event until :meth:`wait` takes it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: dict[tuple[str, Any], dict[str, Any]] = {}

    def on_window(self, event: dict[str, Any]) -> None:
        info = event.get("info") if isinstance(event.get("info"), Mapping) else {}
        with self._cond:
            self._events[(str(event.get("name")), info.get("index"))] = event
            self._cond.notify_all()

    def wait(self, name: str, index: int, timeout_s: float) -> dict[str, Any] | None:
        key = (name, index)
        with self._cond:
            self._cond.wait_for(lambda: key in self._events, timeout_s)
            return self._events.pop(key, None)


def window_energy(
    event: Mapping[str, Any], intensity_g_per_kwh: float | None, pue: float
) -> WindowEnergy:
    """A listener's ``on_window`` event as a :class:`WindowEnergy`."""
    joules, estimated, sources = [], False, {}
    for domain, figure in (event.get("energy") or {}).items():
        if isinstance(figure, Mapping) and isinstance(figure.get("energy_j"), (int, float)):
            joules.append(float(figure["energy_j"]))
            estimated = estimated or bool(figure.get("estimated"))
            sources[str(domain)] = str(figure.get("source"))
    energy_j = sum(joules) if joules else None
    co2 = None
    if energy_j is not None and intensity_g_per_kwh is not None:
        co2 = joules_to_kwh(energy_j) * intensity_g_per_kwh * pue
    info = event.get("info") if isinstance(event.get("info"), Mapping) else {}
    index = info.get("index", event.get("index"))
    return WindowEnergy(
        name=str(event.get("name")),
        index=index if isinstance(index, int) else -1,
        energy_j=energy_j,
        co2_g=co2,
        estimated=estimated,
        duration_s=event.get("duration_s"),
        sources=sources,
    )


class TrainingRun:
    """One training's run as the callbacks see it (see the module docstring).

    Args:
        name: the run's name when it meters itself (default: the script's name).
        listeners: more listeners for a run it opens itself (e.g. a
            :class:`~greentrain.integrations.mirror.Mirror`).
        wait_s: how long :meth:`end` waits for a window's energy.
        summary: print the end-of-run summary on stderr when it meters itself.
        **run_options: :class:`~greentrain.run.RunOptions` fields for a run it opens itself
            (``store=``, ``tags=``, ``meters=``, ``country=``, ``pue=``, ...); checked now, so a
            bad value fails before training starts.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        listeners: Sequence[Any] = (),
        wait_s: float = WAIT_S,
        summary: bool = True,
        **run_options: Any,
    ) -> None:
        self.name = name
        self.options = RunOptions.build(**run_options)
        factors = self.options.carbon.factors()  # ConfigError now for an unknown country
        self.intensity_g_per_kwh: float | None = factors.intensity_g_per_kwh
        self.pue = factors.pue
        self.listeners = list(listeners)
        self.wait_s = wait_s
        self.summary = summary
        self.mode: str | None = None  # "own", "outer", "off"; None before start()
        self.run_id: str | None = None
        self.status: str | None = None  # of a run it opened, once finished
        self._track: contextlib.AbstractContextManager[Any] | None = None
        self._windows_log = _Windows()
        self._open: dict[str, tuple[contextlib.ExitStack, int]] = {}
        self._counts: Counter[str] = Counter()
        self._noted = False

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, enabled: bool = True, config: Mapping[str, Any] | None = None) -> None:
        """Train start: open (or join) the run; ``enabled`` is False off rank zero."""
        if self.mode in ("own", "outer"):
            self.finish(None)  # a second fit() with the same callback: a new run
        self._counts.clear()
        if not enabled:
            self.mode = "off"
            return
        if client.active() or os.environ.get(ENV_RUN):
            self.mode = "outer"
            self.run_id = client.run_id() or os.environ.get(ENV_RUN)
        else:
            self._track = track(
                self.name,
                options=self.options,
                listeners=[self._windows_log, *self.listeners],
                summary=self.summary,
            )
            run = self._track.__enter__()
            self.mode, self.run_id, self.status = "own", run.id, "running"
            atexit.register(self._at_exit)
        if config:
            client.config(**config)

    def finish(self, error: BaseException | None = None) -> None:
        """Train end (``error`` None) or training raised ``error``: close every open window and,
        if this object opened the run, finalize it (``finished``, ``interrupted`` for
        KeyboardInterrupt/SIGTERM/SIGHUP, else ``failed``). Never raises for the run's sake."""
        for name in list(self._open):
            self._close(name)
        cm, self._track = self._track, None
        mode, self.mode = self.mode, None
        if mode != "own" or cm is None:
            return
        atexit.unregister(self._at_exit)
        exc_info = (None, None, None) if error is None else (type(error), error, None)
        try:
            cm.__exit__(*exc_info)
        except SystemExit:
            pass  # SIGTERM/SIGHUP: recorded as interrupted; the framework decides how to exit
        self.status = (
            "finished"
            if error is None
            else "interrupted"
            if isinstance(error, KeyboardInterrupt)
            else "failed"
        )

    def _at_exit(self) -> None:
        """The process is ending with the run still open (the trainer raised and had no hook
        to tell us): finalize with the exception Python is about to report, if any."""
        error = getattr(sys, "last_value", None)
        if error is None:
            error = RuntimeError("the process ended before training did")
        self.finish(error)

    # -- windows and metrics ---------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.mode in ("own", "outer")

    def is_open(self, name: str) -> bool:
        return name in self._open

    def begin(self, name: str, index: int | None = None, **info: Any) -> None:
        """Open window ``name`` (``"epoch"``, ``"eval"``); ``index`` defaults to a count."""
        if not self.active or name in self._open:
            return
        if index is None:
            index = self._counts[name]
        self._counts[name] = max(self._counts[name], index + 1)
        stack = contextlib.ExitStack()
        stack.enter_context(client.window(name, index=index, **info))
        self._open[name] = (stack, index)

    def _close(self, name: str) -> int | None:
        opened = self._open.pop(name, None)
        if opened is None:
            return None
        stack, index = opened
        stack.close()
        return index

    def end(self, name: str) -> WindowEnergy | None:
        """Close window ``name``; its energy when this process meters the run, else None."""
        index = self._close(name)
        if index is None or self.mode != "own":
            if index is not None and self.mode == "outer" and not self._noted:
                self._noted = True
                logger.warning(OUTER_NOTE.format(run=self.run_id or "RUN"))
            return None
        event = self._windows_log.wait(name, index, self.wait_s)
        if event is None:
            logger.warning(
                "greentrain: the energy of %s %s did not arrive within %g s; it is in the run's "
                "record but not in the trainer's logger",
                name,
                index,
                self.wait_s,
            )
            return None
        return window_energy(event, self.intensity_g_per_kwh, self.pue)

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        """The trainer's metrics, recorded in the innermost open window."""
        if self.active and metrics:
            client.log(step, **{str(k): v for k, v in metrics.items()})

    @contextlib.contextmanager
    def window(self, name: str, index: int | None = None) -> Iterator[None]:
        """``begin``/``end`` as a context manager (tests, custom loops)."""
        self.begin(name, index)
        try:
            yield
        finally:
            self.end(name)

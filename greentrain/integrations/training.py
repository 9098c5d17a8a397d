"""What the training callbacks share, free of any framework: a run, one window per phase, and
each closed window's energy back in the training process, in every mode.

:class:`TrainingRun` is driven by the framework's hooks (``start`` at train start, ``begin`` and
``end`` around each epoch or evaluation, ``log`` with the trainer's metrics, ``finish`` at train
end or when training raises). Where its run comes from:

* **own** -- no ``greentrain run`` wraps the process and no :func:`greentrain.run.track` is
  open: it opens ``track()`` at train start (one line on stderr names the run and its store)
  and closes it at train end (``finished``; ``interrupted`` after Ctrl-C or SIGTERM/SIGHUP;
  ``failed`` when training raises).
* **outer** -- under ``greentrain run`` (or inside a ``track()`` the script opened): windows and
  metrics go to that run through :mod:`greentrain.client`.
* **off** -- not the main process of a distributed job (rank zero only): nothing at all.

Either way :meth:`TrainingRun.end` gives the closed window's energy (J, kWh, CO2e, per domain)
for the trainer's logger: the run's answer to the window's end
(:mod:`greentrain.client.answers`). In-process it is there at once. Under ``greentrain run``
the wrapper answers within milliseconds; ``end`` waits for it at most ``wait_s`` seconds. **The
rule for a late answer**: once one has not come in time, the next windows' answers are not
waited for (training is never held up twice by a wrapper that is slow or gone); every answer
that has come by a later ``end`` or by :meth:`collect` is given then, with its own window's
step, and the callbacks log it at that step. A window no meter measured gives no energy (never
zeros); an answer that never comes leaves the energy in the run's record only.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greentrain import client
from greentrain.client.answers import WindowHandle
from greentrain.integrations import names, payload
from greentrain.protocol import ENV_RUN
from greentrain.run import RunOptions, track
from greentrain.store import default_target, redact

logger = logging.getLogger(__name__)

WAIT_S = 2.0  # how long end() waits for a window's answer, seconds
MAX_PENDING = 64  # windows whose answer is still awaited; older ones are given up


@dataclass(frozen=True)
class WindowEnergy:
    """One closed window's energy: its domains' best figures (J) and their sum.

    ``step`` is the trainer's step the window closed at (None: not given); ``values`` are the
    window's quantities by the leaf of their name (``energy_j``, ``energy_kwh``, ``co2_g``,
    ``duration_s``, ``<domain>_energy_j``: :mod:`greentrain.integrations.names`), only those
    measured; ``energy_j`` is None when no meter measured any domain in it (never 0).
    """

    name: str
    index: int | None
    step: int | None
    values: dict[str, float]
    estimated: bool
    sources: dict[str, str]

    @property
    def energy_j(self) -> float | None:
        return self.values.get("energy_j")

    @property
    def energy_kwh(self) -> float | None:
        return self.values.get("energy_kwh")

    @property
    def co2_g(self) -> float | None:
        return self.values.get("co2_g")

    def metrics(self) -> dict[str, float]:
        """The window's values by their tracker names (``greentrain/epoch.energy_kwh``, ...)."""
        return {names.window_name(self.name, k): v for k, v in self.values.items()}


def window_energy(answer: Mapping[str, Any], step: int | None = None) -> WindowEnergy:
    """A window's answer (:data:`greentrain.protocol.WINDOW_ANSWER`) as a :class:`WindowEnergy`."""
    energy = answer.get("energy") if isinstance(answer.get("energy"), Mapping) else {}
    carbon = answer.get("carbon") if isinstance(answer.get("carbon"), Mapping) else {}
    values = payload.window_values(energy, carbon.get("intensity_g_per_kwh"),
                                   carbon.get("pue") or 1.0)  # fmt: skip
    if values and isinstance(answer.get("duration_s"), (int, float)):
        values["duration_s"] = float(answer["duration_s"])
    estimated, sources = False, {}
    for domain, figure in energy.items():
        if isinstance(figure, Mapping) and figure.get("energy_j") is not None:
            estimated = estimated or bool(figure.get("estimated"))
            sources[str(domain)] = str(figure.get("source"))
    index = answer.get("index")
    return WindowEnergy(
        name=str(answer.get("name")),
        index=index if isinstance(index, int) else None,
        step=step,
        values=values,
        estimated=estimated,
        sources=sources,
    )


class TrainingRun:
    """One training's run as the callbacks see it (see the module docstring).

    Args:
        name: the run's name when it meters itself (default: the script's name).
        listeners: more listeners for a run it opens itself (e.g. a
            :class:`~greentrain.integrations.mirror.Mirror`).
        wait_s: how long :meth:`end` waits for a window's answer (see the module docstring).
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
        self.options.carbon.factors()  # ConfigError now for an unknown country
        self.listeners = list(listeners)
        self.wait_s = wait_s
        self.summary = summary
        self.mode: str | None = None  # "own", "outer", "off"; None before start()
        self.run_id: str | None = None
        self.status: str | None = None  # of a run it opened, once finished
        self._track: contextlib.AbstractContextManager[Any] | None = None
        self._open: dict[str, tuple[contextlib.ExitStack, WindowHandle]] = {}
        self._pending: list[tuple[WindowHandle, int | None]] = []  # closed, answer awaited
        self._late = False  # an answer did not come in time: wait for none until one does
        self._counts: Counter[str] = Counter()

    # -- life cycle ------------------------------------------------------------------------------
    def start(
        self,
        enabled: bool = True,
        config: Mapping[str, Any] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Train start: open (or join) the run; ``enabled`` is False off rank zero.
        ``announce(run_id)`` runs before the config is sent (it tells the run about the
        trainer's own tracker runs, so a mirror attaches to them at its first event)."""
        if self.mode in ("own", "outer"):
            self.finish(None)  # a second fit() with the same callback: a new run
        self._counts.clear()
        self._pending.clear()
        self._late = False
        if not enabled:
            self.mode = "off"
            return
        if client.active() or os.environ.get(ENV_RUN):
            self.mode = "outer"
            self.run_id = client.run_id() or os.environ.get(ENV_RUN)
        else:
            self._track = track(
                self.name, options=self.options, listeners=self.listeners, summary=self.summary
            )
            run = self._track.__enter__()
            self.mode, self.run_id, self.status = "own", run.id, "running"
            atexit.register(self._at_exit)
            where = redact(str(self.options.store or default_target()))
            print(f"greentrain: recording run {run.id} in {where} (greentrain show {run.id} "
                  f"--store {where})", file=sys.stderr)  # fmt: skip
        if announce is not None and self.run_id:
            announce(self.run_id)
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
        """Open window ``name`` (``"epoch"``, ``"eval"``); ``index`` defaults to a count from 1
        (epochs are numbered from 1 everywhere)."""
        if not self.active or name in self._open:
            return
        if index is None:
            index = self._counts[name] + 1
        self._counts[name] = max(self._counts[name], index)
        stack = contextlib.ExitStack()
        handle = stack.enter_context(client.window(name, index=index, **info))
        self._open[name] = (stack, handle)

    def _close(self, name: str) -> WindowHandle | None:
        opened = self._open.pop(name, None)
        if opened is None:
            return None
        stack, handle = opened
        stack.close()
        return handle

    def end(self, name: str, step: int | None = None) -> list[WindowEnergy]:
        """Close window ``name`` (``step``: the trainer's step it closed at); the energy of
        every window whose answer is here now, this one last (see the module docstring)."""
        handle = self._close(name)
        if handle is not None and self.active:
            self._pending.append((handle, step))
            if len(self._pending) > MAX_PENDING:
                self._pending.pop(0)
        return self.collect(wait=handle is not None)

    def collect(self, wait: bool = False) -> list[WindowEnergy]:
        """The energy of the closed windows whose answers have come (``wait``: wait for the
        last one as the late-answer rule allows)."""
        out, left = [], []
        for i, (handle, step) in enumerate(self._pending):
            last = wait and i == len(self._pending) - 1
            answer = handle.answer(self.wait_s if last and not self._late else 0.0)
            if answer is None:
                left.append((handle, step))
                if last and not self._late:
                    self._late = True
                    logger.warning(
                        "greentrain: the energy of %s did not come within %g s; it is logged to "
                        "the trainer when it comes (at its own step), and is in the run's record",
                        handle.name, self.wait_s,
                    )  # fmt: skip
                continue
            self._late = False
            energy = window_energy(answer, step)
            if energy.values:
                out.append(energy)
        self._pending = left
        return out

    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        """The trainer's metrics (greentrain's own names left out: the energy is in the
        windows), recorded in the innermost open window."""
        metrics = {str(k): v for k, v in metrics.items() if not names.is_greentrain(k)}
        if self.active and metrics:
            client.log(step, **metrics)

    @contextlib.contextmanager
    def window(self, name: str, index: int | None = None) -> Iterator[list[WindowEnergy]]:
        """``begin``/``end`` as a context manager (tests, custom loops); the list it gives is
        filled with what ``end`` returns."""
        got: list[WindowEnergy] = []
        self.begin(name, index)
        try:
            yield got
        finally:
            got += self.end(name)

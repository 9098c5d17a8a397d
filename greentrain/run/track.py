"""``track()``: meter the current process as one run (notebooks, ``greentrain train``, bench).

Client calls inside the block go straight to the run's recorder. Under an outer ``greentrain
run`` it meters nothing itself and yields a handle bound to the outer run, so energy is metered
once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from greentrain import client
from greentrain.errors import EXIT_BUDGET, BudgetExceeded
from greentrain.meters.base import Meter
from greentrain.meters.proctree import JobCPU
from greentrain.protocol import ENV_CHANNEL, ENV_RUN
from greentrain.record.ranking import select_best, total_j
from greentrain.run.group import GroupInfo
from greentrain.run.options import RunOptions
from greentrain.run.oversight import Oversight, say
from greentrain.run.prometheus_export import exporters_for
from greentrain.run.recorder import Clock, Recorder
from greentrain.run.session import RunSession
from greentrain.run.stopping import InProcessStop
from greentrain.run.summary import print_summary


class Run:
    """Handle yielded by :func:`track`: ``id`` and the same calls as :mod:`greentrain.client`."""

    def __init__(
        self, run_id: str, recorder: Recorder | None, oversight: Oversight | None = None
    ) -> None:
        self.id = run_id
        self._recorder = recorder
        self._oversight = oversight
        self.status = "running"
        self.record: dict[str, Any] = {}
        self._last_energy: tuple[float, float] | None = None

    def forecast_text(self) -> str | None:
        """The run's latest energy forecast for a progress bar (``≈ 0.42 kWh at end, ±0.03``);
        None before the first epoch ends, without an epoch count, or under an outer run."""
        return self._oversight.text() if self._oversight is not None else None

    @property
    def budget_exceeded(self) -> bool:
        """True once the run's budget asked it to stop."""
        return self._oversight is not None and self._oversight.stop_requested

    def power_w(self) -> float | None:
        """Current power draw in watts: all measured domains, best figure per domain.

        It is the change of cumulative energy since the previous call divided by the time
        between the calls (so call it at a steady pace, e.g. once a second for a progress bar).
        None on the first call, when bound to an outer run (that process meters), or when no
        meter measures anything.
        """
        if self._recorder is None:
            return None
        joules = total_j(select_best(self._recorder.meters.read()))
        if joules is None:
            return None
        now = time.monotonic()
        previous, self._last_energy = self._last_energy, (now, joules)
        if previous is None or now <= previous[0]:
            return None
        return max(0.0, joules - previous[1]) / (now - previous[0])

    @property
    def outer(self) -> bool:
        """True when bound to an outer ``greentrain run`` (this process meters nothing)."""
        return self._recorder is None

    def config(self, **params: Any) -> None:
        client.config(**params)

    def log(self, step: int | None = None, **metrics: Any) -> None:
        client.log(step, **metrics)

    def window(self, name: str, **info: Any) -> contextlib.AbstractContextManager[None]:
        return client.window(name, **info)


class _Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP received inside :func:`track` (raised in the main thread)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`_Terminated` while the block runs (main thread only).

    Without it, ``kill``, ``timeout`` or a cluster's pre-emption would end the process before
    the run's record got its energy and status. Handlers someone else installed are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _budget_error(run_id: str, tripped: dict[str, Any]) -> BudgetExceeded:
    spent = tripped.get("spent") or {}
    what = f"spent {spent['kwh']:.4g} kWh" if spent else "forecast over budget"
    budget = tripped.get("budget") or {}
    limit = " / ".join(
        f"{budget[k]:g} {unit}" for k, unit in (("kwh", "kWh"), ("gco2", "gCO2e")) if budget.get(k)
    )
    return BudgetExceeded(f"run {run_id} stopped by its budget ({limit}): {what}", tripped)


@contextlib.contextmanager
def track(
    name: str | None = None,
    *,
    options: RunOptions | None = None,
    meter_objects: Sequence[Meter] = (),
    listeners: Sequence[Any] = (),
    summary: bool = False,
    clock: Clock | None = None,
    **fields: Any,
) -> Iterator[Run]:
    """Meter the current process as one run.

    Args:
        name: the run's name (default: the script's name).
        options: how to meter and record, or its fields as keywords (``store=``, ``tags=``,
            ``meters=``, ``country=``, ``region=``, ``carbon_intensity=``, ``pue=``,
            ``epochs=``, ``budget_kwh=``, ``budget_gco2=``, ``budget_forecast=``,
            ``prometheus_port=``, ``prometheus_url=``; see
            :class:`~greentrain.run.options.RunOptions`).
        meter_objects: ready meter instances, in addition to ``meters`` (tests).
        listeners: objects following the run as it goes (:mod:`greentrain.run.listeners`).
        summary: print the end-of-run summary on stderr.
        clock: where the run reads the time (tests inject a stepping wall clock).

    On exit the record is finalized: ``finished``; ``interrupted`` on KeyboardInterrupt, and on
    SIGTERM/SIGHUP (then ``SystemExit(128 + signal)`` is raised, the shell's exit code for a
    process killed by that signal); ``failed`` on any other exception (which propagates);
    ``budget`` when the run's budget stopped it (KeyboardInterrupt in the block's thread,
    whatever SIGINT's inherited disposition, :mod:`greentrain.run.stopping`; then
    :class:`~greentrain.errors.BudgetExceeded` is raised; the CLI exits 124).
    """
    opts = options if options is not None else RunOptions.build(**fields)
    outer = os.environ.get(ENV_RUN)
    if outer and os.environ.get(ENV_CHANNEL):
        if opts.budget.active:
            say("the budget is ignored here: under `greentrain run` the wrapper meters, so give "
                "it the budget (greentrain run --budget-kwh ... -- ...)")  # fmt: skip
        yield Run(outer, None)
        return
    factors = opts.carbon.factors()
    exporters = exporters_for(opts.prometheus_port, factors)  # a port in use: before anything
    stopper = InProcessStop(threading.current_thread(), opts.grace_s)
    oversight = Oversight(opts, intensity_g_per_kwh=factors.intensity_g_per_kwh, pue=factors.pue,
                          stopper=stopper)  # fmt: skip
    command = list(sys.argv) if sys.argv and sys.argv[0] else ["python"]
    group = GroupInfo(opts.group, None, "--group") if opts.group else None
    session = RunSession(opts, command, name=name or opts.name, carbon=factors.to_dict(),
                         meter_objects=meter_objects, group=group, clock=clock,
                         listeners=[*oversight.listeners, *listeners, *exporters],
                         )  # fmt: skip
    run_id, recorder = session.run_id, session.recorder
    handle = Run(run_id, recorder, oversight)
    status, exit_code = "failed", 1
    try:
        session.start_meters()
        recorder.align_start(JobCPU())
        oversight.start(recorder)
        client.bind(recorder)
        try:
            with _terminate_as_exception():
                yield handle
        finally:
            client.unbind(recorder)
            oversight.close()
        status, exit_code = "finished", 0
        if oversight.tripped is not None:  # the job caught the interrupt and returned
            status, exit_code = "budget", EXIT_BUDGET
            raise _budget_error(run_id, oversight.tripped)
    except _Terminated as err:
        status, exit_code = "interrupted", 128 + err.signum
        raise SystemExit(exit_code) from None
    except KeyboardInterrupt:
        if oversight.tripped is None:
            status, exit_code = "interrupted", 130
            raise
        status, exit_code = "budget", EXIT_BUDGET
        raise _budget_error(run_id, oversight.tripped) from None
    except SystemExit as err:  # sys.exit() in the block: its code decides, like a process's
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        status, exit_code = ("finished" if code == 0 else "failed"), code
        raise
    finally:
        oversight.close()
        handle.record = session.finish(status, exit_code)
        for exporter in exporters:
            exporter.close()
        handle.status = status
        shown = session.summary_record() if summary else {}
        if shown and sys.stderr is not None:
            print_summary(shown)

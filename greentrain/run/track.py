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
from greentrain.errors import StoreError
from greentrain.meters.base import Meter
from greentrain.meters.proctree import JobCPU
from greentrain.protocol import ENV_CHANNEL, ENV_RUN
from greentrain.record.ranking import select_best
from greentrain.run.group import GroupInfo
from greentrain.run.identity import new_run_id, open_store
from greentrain.run.meterset import MeterSet
from greentrain.run.options import RunOptions
from greentrain.run.recorder import Recorder
from greentrain.run.summary import print_summary


class Run:
    """Handle yielded by :func:`track`: ``id`` and the same calls as :mod:`greentrain.client`."""

    def __init__(self, run_id: str, recorder: Recorder | None) -> None:
        self.id = run_id
        self._recorder = recorder
        self.status = "running"
        self.record: dict[str, Any] = {}
        self._last_energy: tuple[float, float] | None = None

    def power_w(self) -> float | None:
        """Current power draw in watts: all measured domains, best figure per domain.

        It is the change of cumulative energy since the previous call divided by the time
        between the calls (so call it at a steady pace, e.g. once a second for a progress bar).
        None on the first call, when bound to an outer run (that process meters), or when no
        meter measures anything.
        """
        if self._recorder is None:
            return None
        best = select_best(self._recorder.meters.read())
        joules = [e["energy_j"] for e in best.values() if e.get("energy_j") is not None]
        if not joules:
            return None
        now, total_j = time.monotonic(), float(sum(joules))
        previous, self._last_energy = self._last_energy, (now, total_j)
        if previous is None or now <= previous[0]:
            return None
        return max(0.0, total_j - previous[1]) / (now - previous[0])

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


@contextlib.contextmanager
def track(
    name: str | None = None,
    *,
    options: RunOptions | None = None,
    meter_objects: Sequence[Meter] = (),
    listeners: Sequence[Any] = (),
    summary: bool = False,
    **fields: Any,
) -> Iterator[Run]:
    """Meter the current process as one run.

    Args:
        name: the run's name (default: the script's name).
        options: how to meter and record, or its fields as keywords (``store=``, ``tags=``,
            ``meters=``, ``country=``, ``region=``, ``carbon_intensity=``, ``pue=``; see
            :class:`~greentrain.run.options.RunOptions`).
        meter_objects: ready meter instances, in addition to ``meters`` (tests).
        listeners: objects following the run as it goes (:mod:`greentrain.run.listeners`).
        summary: print the end-of-run summary on stderr.

    On exit the record is finalized: ``finished``; ``interrupted`` on KeyboardInterrupt, and on
    SIGTERM/SIGHUP (then ``SystemExit(128 + signal)`` is raised, the shell's exit code for a
    process killed by that signal); ``failed`` on any other exception (which propagates).
    """
    outer = os.environ.get(ENV_RUN)
    if outer and os.environ.get(ENV_CHANNEL):
        yield Run(outer, None)
        return
    opts = options if options is not None else RunOptions.build(**fields)
    names = opts.meter_names(with_objects=bool(meter_objects))
    carbon = opts.carbon.factors().to_dict()
    st, owned = open_store(opts.store)
    command = list(sys.argv) if sys.argv and sys.argv[0] else ["python"]
    run_id = new_run_id()
    meter_set = MeterSet(names, meters=meter_objects, options=opts.carbon.meter_options())
    group = GroupInfo(opts.group, None, "--group") if opts.group else None
    recorder = Recorder(st, run_id, meter_set, sample_s=opts.sample_s, listeners=listeners,
                        group=group)  # fmt: skip
    recorder.create(command, name or opts.name, opts.tags, carbon)
    handle = Run(run_id, recorder)
    status, exit_code = "failed", 1
    try:
        meter_set.start(background_slow=opts.baseline_s == 0, on_ready=recorder.on_meter_ready)
        recorder.writes.submit("set_meters", run_id=run_id, meters=meter_set.statuses())
        recorder.align_start(JobCPU())
        client.bind(recorder)
        try:
            with _terminate_as_exception():
                yield handle
        finally:
            client.unbind(recorder)
        status, exit_code = "finished", 0
    except _Terminated as err:
        status, exit_code = "interrupted", 128 + err.signum
        raise SystemExit(exit_code) from None
    except KeyboardInterrupt:
        status, exit_code = "interrupted", 130
        raise
    except SystemExit as err:  # sys.exit() in the block: its code decides, like a process's
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        status, exit_code = ("finished" if code == 0 else "failed"), code
        raise
    finally:
        try:
            handle.record = recorder.finalize(status, exit_code)
            handle.status = status
        except StoreError as err:
            print(f"greentrain: the record of run {run_id} could not be finished: {err}",
                  file=sys.stderr)  # fmt: skip
        finally:
            if owned:
                with contextlib.suppress(StoreError):
                    st.close()
        if summary and handle.record and sys.stderr is not None:
            print_summary(handle.record)

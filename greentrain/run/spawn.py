"""``greentrain run -- COMMAND``: run the command as a metered job and finalize its record.

The job gets ``GREENTRAIN_RUN`` (run id) and ``GREENTRAIN_CHANNEL`` (the socket of
:mod:`greentrain.run.channel`) so ``greentrain.client`` calls in it reach this process. Its
processes, the terminal and signals are handled as :mod:`greentrain.run.process` describes;
a watchdog (:mod:`greentrain.run.watchdog`) stops the job and marks the record should this
process die.

Exit codes follow the shell: the job's own code; ``128 + N`` when it was killed by signal N
(130 after Ctrl-C, 137 after SIGKILL, 143 after SIGTERM); 127 when the command is not found,
126 when it cannot be executed; 124 when its budget stopped it. A failure of greentrain itself
(a locked or vanished store) is reported on stderr and never replaces the job's code.

Several nodes' wrappers of one job (SLURM's job step, torchrun's rendezvous id, or ``--group``)
join one run group (:mod:`greentrain.run.group`): each records its node's part.

Status: ``finished`` (exit 0), ``failed`` (non-zero exit, SIGKILL, command not found),
``interrupted`` (the wrapper received SIGINT/SIGTERM/SIGHUP/SIGQUIT, or the job was killed by
one of them), ``budget`` (the run's budget stopped it: SIGINT, SIGTERM, then SIGKILL to the
job's group, a grace period apart, :mod:`greentrain.run.stopping`; exit code 124). A job that
*exits* with 130 or 143 by itself is ``failed``, not interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import EXIT_BUDGET, ConfigError
from greentrain.meters.base import Meter
from greentrain.meters.proctree import JobCPU
from greentrain.protocol import ENV_CHANNEL, ENV_RUN
from greentrain.run.channel import ChannelServer
from greentrain.run.group import detect_group
from greentrain.run.group_budget import group_spend_for
from greentrain.run.options import RunOptions
from greentrain.run.oversight import Oversight
from greentrain.run.process import TERMINATING, Job, become_subreaper, exit_code_of
from greentrain.run.prometheus_export import exporters_for
from greentrain.run.recorder import Clock, Recorder
from greentrain.run.session import RunSession
from greentrain.run.stopping import GroupStop
from greentrain.run.summary import print_summary
from greentrain.run.watchdog import Watchdog

# Signals the wrapper takes and passes to the job's group (the others keep their default).
FORWARDED_SIGNALS = (*TERMINATING, signal.SIGUSR1, signal.SIGUSR2)
_WAITED = (*FORWARDED_SIGNALS, signal.SIGCHLD)  # SIGCHLD: the job exited, or stop() wakes us


@dataclass
class RunResult:
    """What :func:`run_command` returns."""

    run_id: str
    exit_code: int
    status: str
    record: dict[str, Any] = field(default_factory=dict)


def ensure_standard_fds() -> None:
    """Open /dev/null on a closed stdin/stdout/stderr, so no file we open later becomes the
    job's stdout or stderr (a closed fd 2 would otherwise be the next file we open)."""
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


_log = logging.getLogger("greentrain.run")


def _say(message: str, level: int = logging.INFO) -> None:
    """Log ``greentrain: message``: the CLI shows it on stderr (never on the job's stdout)."""
    _log.log(level, "greentrain: %s", message)


class SignalWatcher:
    """Waits for :data:`FORWARDED_SIGNALS` (blocked in every thread) and passes each to the job.

    Before the job exists a terminating signal stops the run before it starts.
    """

    def __init__(self, recorder_event: Any = None) -> None:
        self.job: Job | None = None
        self.received: list[int] = []
        self.event = threading.Event()  # a terminating signal arrived
        self._note = recorder_event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="greentrain-signals", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait(_WAITED, 1.0)
            # CPython returns an uninitialised siginfo when EINTR hits at the deadline
            if info is None or info.si_signo not in FORWARDED_SIGNALS:
                continue  # a timeout, or the SIGCHLD that stop() sends to wake the thread
            signum = info.si_signo
            self.received.append(signum)
            name = signal.Signals(signum).name
            if signum in TERMINATING:
                self.event.set()
            if self.job is None:
                _say(f"{name} received; stopping")
                continue
            self.job.forward(signum)
            if self._note is not None:
                self._note("signal forwarded", signal=name)
            _say(f"{name} forwarded to the command's process group; waiting for it")

    @property
    def terminated(self) -> bool:
        return any(s in TERMINATING for s in self.received)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pthread_kill(self._thread.ident, signal.SIGCHLD)  # wake it now
        self._thread.join(timeout=5)
        # swallow signals that arrived after the watcher stopped, before the mask is restored
        for _ in range(100):
            info = signal.sigtimedwait(FORWARDED_SIGNALS, 0)
            if info is None:
                break


def run_command(
    command: Sequence[str],
    options: RunOptions | None = None,
    *,
    meter_objects: Sequence[Meter] = (),
    listeners: Sequence[Any] = (),
    summary: bool = True,
    clock: Clock | None = None,
    **fields: Any,
) -> RunResult:
    """Run ``command`` as a metered job; see the module docstring for codes and status.

    Args:
        options: how to meter and record (or its fields as keywords, see
            :meth:`RunOptions.build`): meters None -> every available default meter, never
            ``fake``; ``meter_objects`` adds ready meter instances (tests).
        listeners: objects following the run as it goes (:mod:`greentrain.run.listeners`).
        summary: print the end-of-run summary on stderr.
        clock: where the run reads the time (tests inject a stepping wall clock).
    """
    if not command or not command[0]:
        raise ConfigError("no command given; usage: greentrain run [OPTIONS] -- COMMAND ...")
    opts = options if options is not None else RunOptions.build(**fields)
    group, warning = detect_group(command, opts.group, size=opts.group_size)
    if warning:
        _say(warning, logging.WARNING)
    factors = opts.carbon.factors()
    exporters = exporters_for(opts.prometheus_port, factors)  # a port in use: before anything
    ensure_standard_fds()
    become_subreaper()

    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)
    recorder: Recorder | None = None
    session: RunSession | None = None
    watcher = SignalWatcher(lambda *a, **k: recorder.event_now(*a, **k) if recorder else None)
    watcher.start()
    channel: ChannelServer | None = None
    watchdog: Watchdog | None = None
    job: Job | None = None
    exit_code, killed_by, status = 1, 0, "failed"
    record: dict[str, Any] = {}
    run_id = ""

    stopper = GroupStop(lambda: job.pid if job is not None else None, opts.grace_s)
    oversight = Oversight(opts, intensity_g_per_kwh=factors.intensity_g_per_kwh,
                          pue=factors.pue, stopper=stopper)  # fmt: skip
    try:
        session = RunSession(opts, command, name=opts.name, carbon=factors.to_dict(),
                             meter_objects=meter_objects, group=group, clock=clock,
                             listeners=[*oversight.listeners, *listeners, *exporters],
                             )  # fmt: skip
        run_id, recorder, meter_set = session.run_id, session.recorder, session.meters
        session.start_meters(defer_slow=True)
        if opts.baseline_s > 0 and not watcher.event.is_set():
            recorder.baseline(opts.baseline_s, watcher.event)
        channel = ChannelServer(recorder)
        channel.start()
        env = dict(os.environ, **{ENV_RUN: run_id, ENV_CHANNEL: channel.path})
        if watcher.event.is_set():  # interrupted before the command started
            exit_code, killed_by = 128 + watcher.received[0], watcher.received[0]
        else:
            watchdog = Watchdog(session.location, run_id, opts.grace_s)
            job = Job(command, env, opts.grace_s)
            recorder.align_start(None)
            cannot_start = job.start()
            if cannot_start is not None:
                exit_code = cannot_start
            else:
                watcher.job = job  # first: a signal sent once the job runs reaches it
                meter_set.start_deferred()  # slow meters begin once the job runs
                watchdog.watch(job.pid, job.cgroup.path if job.cgroup is not None else None)
                recorder.cpu = JobCPU(job.pid, job.reaped_cpu_s)
                meter_set.attach(job.pid, job.reaped_cpu_s)
                oversight.start(recorder, group_spend=group_spend_for(session))
                exit_code, killed_by = exit_code_of(job.wait())
                session.job_ended = time.monotonic()  # --grace counts from here
                watcher.job = None
        oversight.close()
        if oversight.tripped is not None:
            status, exit_code = "budget", EXIT_BUDGET
        elif watcher.terminated or killed_by in TERMINATING:
            status = "interrupted"
        elif exit_code == 0:
            status = "finished"
    finally:
        try:
            if job is not None:
                job.release()
                if job.pid is not None and watcher.job is not None:  # greentrain itself failed
                    exit_code, killed_by = exit_code_of(job.wait())
                stopped = job.stop_leftovers(spare=[watchdog.pid] if watchdog else [])
                if stopped and recorder is not None:
                    recorder.event_now("processes stopped", count=stopped, processes=job.stopped,
                                       detail="still running when the command exited")  # fmt: skip
            oversight.close()
            if channel is not None:  # what the job sent before it exited, then the run's end
                channel.close(deadline_s=opts.grace_s / 4)  # <= grace/2 in all
        finally:
            try:
                if session is not None:
                    record = session.finish(status, exit_code)
            finally:
                for exporter in exporters:
                    exporter.close()
                if watchdog is not None:
                    watchdog.dismiss()
                watcher.stop()
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    shown = session.summary_record() if summary and session is not None else {}
    if shown and sys.stderr is not None:
        print_summary(shown)
    return RunResult(run_id=run_id, exit_code=int(exit_code), status=status, record=record)

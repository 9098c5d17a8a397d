"""One run's set-up and end, the same for ``greentrain run`` (:mod:`greentrain.run.spawn`) and
``track()`` (:mod:`greentrain.run.track`).

:class:`RunSession` opens the store (at most :data:`~greentrain.run.applier.OPEN_WAIT_S`
seconds: a store that does not answer is a passing fault and the run goes on with its journal;
a configuration error -- a malformed URL, a file that is not a store, a newer schema -- is
raised before anything starts), creates the run's journal and its writer
(:class:`~greentrain.run.applier.RunWrites`), the meter set and the recorder, and queues the
``running`` record. :meth:`RunSession.finish` queues the record's end, waits at most the run's
``--grace`` for the store, reads the record back and closes what it opened. What comes between
(a spawned job, or the caller's block) is the caller's.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greentrain.errors import StoreError
from greentrain.meters.base import Meter
from greentrain.run.applier import OPEN_WAIT_S, RunWrites
from greentrain.run.group import GroupInfo
from greentrain.run.identity import new_run_id, parent_run_id
from greentrain.run.launch import settle_group
from greentrain.run.meterset import MeterSet
from greentrain.run.options import RunOptions
from greentrain.run.oversight import say
from greentrain.run.recorder import Clock, Recorder
from greentrain.run.slurm_accounting import record_slurm_figure
from greentrain.store import Store, StoreLocation, locate
from greentrain.store.journal import JournalWriter, read_journal

_log = logging.getLogger("greentrain.run")
EXIT_MARGIN_S = 2.0  # at most this much of --grace (half at most) is kept for the exit
MIN_WAIT_S = 0.2  # the store's least wait at the end (a healthy store needs milliseconds)


def open_writes(target: Store | str | Any, run_id: str) -> tuple[RunWrites, StoreLocation, bool]:
    """The run's writer: (writes, the store's location, whether the session opened the store
    and closes it). It waits at most :data:`OPEN_WAIT_S` for the store; raises StoreError for
    a configuration error only."""
    owned = not isinstance(target, Store)
    location = locate(target) if owned else target.location
    writes = RunWrites(None, location if owned else target)
    try:
        writes.wait_open(OPEN_WAIT_S)
    except StoreError:
        writes.close(0.0)  # nothing was written: no journal
        raise
    try:
        writes.journal = JournalWriter(location, run_id)
    except (OSError, StoreError) as err:
        say(f"the run's journal cannot be written ({err}); its writes go to the store only")
    return writes, location, owned


def rescue_if_replaced(store: Store, run_id: str) -> None:
    """The store file was deleted or replaced mid-run: save what this connection holds (every
    run it saw, this one included) to the file's place, or beside it if a new file is there."""
    if not store.replaced():
        return
    path = Path(store.path)
    target = path if not path.exists() else path.with_name(f"{path.name}.{run_id}.db")
    try:
        store.save_copy(target)
    except Exception as err:  # noqa: BLE001 - report, never hide the job's exit code
        say(f"the store {path} was deleted or replaced while run {run_id} was going, and "
             f"saving a copy failed ({err}); the record is lost")  # fmt: skip
        return
    say(f"the store {path} was deleted or replaced while run {run_id} was going; everything "
         f"it held, this run included, was saved to {target}")  # fmt: skip


class RunSession:
    """One run from its record's creation to its end (see the module docstring)."""

    def __init__(
        self,
        opts: RunOptions,
        command: Sequence[str],
        *,
        name: str | None,
        carbon: dict[str, Any] | None,
        meter_objects: Sequence[Meter] = (),
        listeners: Sequence[Any] = (),
        group: GroupInfo | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.opts = opts
        self.group = group
        self.run_id = new_run_id()
        self.writes, self.location, self._owned = open_writes(opts.store, self.run_id)
        self.group = settle_group(group, self.writes.store())  # a reused id: a new launch
        group = self.group
        names = opts.meter_names(with_objects=bool(meter_objects))
        self.meters = MeterSet(names, meters=meter_objects, options=opts.meter_options())
        self.recorder = Recorder(self.writes, self.run_id, self.meters, sample_s=opts.sample_s,
                                 listeners=listeners, group=group, clock=clock)  # fmt: skip
        self.recorder.create(command, name, opts.tags, carbon, parent_id=parent_run_id(),
                             first_beat_s=opts.baseline_s)  # fmt: skip
        self.record: dict[str, Any] = {}
        self.job_ended: float | None = None  # monotonic instant the job exited (spawn sets it)

    def start_meters(self, *, defer_slow: bool = False) -> None:
        """Start every meter (slow ones in the background, or deferred to the job's start) and
        record their status."""
        self.meters.start(background_slow=self.opts.baseline_s == 0,
                          on_ready=self.recorder.on_meter_ready, defer_slow=defer_slow)  # fmt: skip
        self.recorder.store_meters()

    def finish(self, status: str, exit_code: int | None) -> dict[str, Any]:
        """Queue the record's end, wait at most ``--grace`` seconds for the store (landing the
        writes and reading the record back), and return the stored record ({} when it has not
        landed or could not be read in time: its journal stays for ``greentrain store sync``)."""
        try:
            self.recorder.stop()  # the meters' final readings first: sacct may take seconds
            record_slurm_figure(self.recorder, self.group)
            self.recorder.finalize(status, exit_code)
        finally:
            # the wrapper exits within --grace of its job: the store gets what is left of it
            ended = self.job_ended or time.monotonic()  # track(): the block just ended
            margin = min(EXIT_MARGIN_S, self.opts.grace_s / 2)
            deadline = max(ended + self.opts.grace_s - margin, time.monotonic() + MIN_WAIT_S)
            landed = self.writes.close(deadline - time.monotonic())
            store = None if self.writes.hung else self.writes.store()
            reader = None
            if store is not None:
                rescue_if_replaced(store, self.run_id)
                if landed:
                    reader = threading.Thread(target=self._read_back, args=(store, deadline),
                                              name="greentrain-read", daemon=True)  # fmt: skip
                    reader.start()
                    reader.join(max(0.0, deadline - time.monotonic()))
            self.recorder.ended_with(status, exit_code, self.record)
            if store is not None and self._owned and not (reader and reader.is_alive()):
                with contextlib.suppress(StoreError):
                    store.close()
        return self.record

    def summary_record(self) -> dict[str, Any]:
        """The record the end-of-run summary shows: the stored one; else, when the store did
        not take the run in time, the run as its journal holds it (:func:`journal_record`,
        marked ``from_journal``); {} without either."""
        path = self.writes.where
        if self.record or path is None:
            return self.record
        try:
            return journal_record(path, self.run_id)
        except Exception as err:  # noqa: BLE001 - only the summary is lost (claimed, full disk)
            _log.debug("greentrain: no summary from the journal %s: %s", path, err)
            return {}

    def _read_back(self, store: Store, deadline: float) -> None:
        """The stored record, read within the deadline (a store that stops answering now only
        costs the summary)."""
        try:
            with store.patience(max(0.1, deadline - time.monotonic())):
                self.record = store.get_run(self.run_id)
        except StoreError as err:
            say(f"cannot read run {self.run_id} back: {err}")


def journal_record(path: Path, run_id: str) -> dict[str, Any]:
    """Run ``run_id`` as the journal at ``path`` holds it: its entries landed in a throwaway
    SQLite store and read back through the store's own reader (the same figures, but alone:
    not yet split with the runs it shared the machine with), marked ``from_journal`` (the
    journal's path). OSError or StoreError when the journal or the run cannot be read."""
    journal = read_journal(path)
    with tempfile.TemporaryDirectory(prefix="greentrain-summary-") as tmp:
        with Store(Path(tmp) / "journal.db", sync=False) as scratch:
            scratch.land(journal.entries)
            record = scratch.get_run(run_id)
    return dict(record, from_journal=str(path))

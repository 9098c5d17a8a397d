"""The live forecast's sibling runs: finished runs of the same configuration, read from the
run's store off the job's path, in bounded time (issue 22).

A run's *siblings* are the finished runs of its store with the same
:func:`~greentrain.record.siblings.sibling_key` (the same command and the same config, each
but for seed, name, tags and store) that ended before this run started -- the back-test's
``siblings="earlier"`` rule (:mod:`greentrain.report.backtest`), so a forecast uses nothing
the run could not have known when it began. Their epoch joules give
:func:`~greentrain.record.siblings.sibling_prior` for the forecast.

How they are read (:func:`read_siblings`): a read-only connection of its own (never the run's
writer), candidates chosen in SQL a page at a time (finished single runs that ended by this
run's start, whose command starts with the same words up to the first option siblings may
differ in; :mod:`greentrain.store.sibling_reads`), the key checked on each, and the epoch
windows (not the metrics) of at most :data:`MAX_SIBLINGS` of them, the newest.

How long (:class:`SiblingLookup`): the read runs in a daemon thread of its own. The forecast
listener asks for its answer when it forecasts (on the listeners' thread, never the job's)
and waits at most until :data:`LOOKUP_S` seconds after the lookup began, once; a store that
is hung, locked or unreachable then gives "no prior" with the reason kept, and a later
forecast uses the siblings should the answer come after all. A store that cannot be read
(not a store, damaged) gives no prior and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from greentrain.errors import StoreError
from greentrain.record.siblings import command_start, epoch_joules, sibling_key
from greentrain.store.location import StoreLocation
from greentrain.store.reader import StoreReader
from greentrain.store.sibling_reads import PAGE

LOOKUP_S = 5.0  # a forecast waits at most this long (from the lookup's start) for siblings
MAX_SIBLINGS = 50  # the newest so many siblings at most (the prior weighs at most 20 epochs)

Series = list[list[float]]


def read_siblings(
    location: StoreLocation,
    run_id: str,
    command: Sequence[Any],
    config: Mapping[str, Any],
    started_at: str,
    *,
    patience_s: float = LOOKUP_S,
) -> Series:
    """The epoch joules of run ``run_id``'s finished siblings in the store at ``location``
    (ended at or before ``started_at``, ISO-8601 UTC; the newest :data:`MAX_SIBLINGS`),
    siblings with an unmeasured epoch left out. Raises StoreError when the store cannot be
    read (or stays busy ``patience_s`` seconds)."""
    key = sibling_key(command, config)
    reader = StoreReader(location, read_only=True, create=False)
    with reader, reader.patience(patience_s):
        ids: list[str] = []
        offset = 0
        while len(ids) < MAX_SIBLINGS:
            page = reader.sibling_candidates(started_at, command_start=command_start(command),
                                             exclude=run_id, offset=offset)  # fmt: skip
            ids += [r["id"] for r in page if sibling_key(r["command"], r["config"]) == key]
            if len(page) < PAGE:
                break
            offset += len(page)
        runs = reader.epoch_runs(ids[:MAX_SIBLINGS]) if ids else []
    return [s for s in map(epoch_joules, runs) if s is not None]


class SiblingLookup:
    """One lookup of sibling runs, begun at once in a daemon thread (see the module docstring).

    Args:
        key: what the lookup is for (the run's sibling key): a new config asks anew.
        read: returns the siblings' epoch joules (may raise StoreError, or hang).
        timeout_s: how long after its start :meth:`result` waits at most.
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        key: str,
        read: Callable[[], Series],
        *,
        timeout_s: float = LOOKUP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self._clock = clock
        self._deadline = clock() + timeout_s
        self._read = read
        self._done = threading.Event()
        self._waited = False
        self._series: Series | None = None
        self._error = ""
        threading.Thread(target=self._run, name="greentrain-siblings", daemon=True).start()

    def _run(self) -> None:
        try:
            self._series = self._read()
        except StoreError as err:
            self._error = f"the store could not be read for sibling runs ({err})"
        except Exception as err:  # noqa: BLE001 - no prior, and why, rather than a lost forecast
            self._error = f"reading sibling runs failed ({type(err).__name__}: {err})"
        finally:
            self._done.set()

    def result(self) -> tuple[Series | None, str]:
        """(the siblings' epoch joules, "") once read; else (None, why not). The first call
        waits until the lookup ends or its deadline passes; later calls never wait."""
        if not self._waited:
            self._waited = True
            self._done.wait(max(0.0, self._deadline - self._clock()))
        if not self._done.is_set():
            return None, f"the store did not answer within {self.timeout_s:g} s"
        if self._series is None:
            return None, self._error or "no sibling runs read"
        return self._series, ""


class SiblingSource:
    """Where a run's sibling runs are looked up: its command (for the key) and how to read
    them for a config (:func:`read_siblings` on the run's store, or a test's reader).

    Args:
        command: the run's command as stored (redacted).
        read: the siblings' epoch joules for a config (may raise StoreError, or hang).
        timeout_s: how long a forecast waits at most for one lookup.
    """

    def __init__(
        self,
        command: Sequence[Any],
        read: Callable[[Mapping[str, Any]], Series],
        *,
        timeout_s: float | None = None,
    ) -> None:
        self.command = list(command)
        self.read = read
        self.timeout_s = LOOKUP_S if timeout_s is None else timeout_s

    @classmethod
    def of_store(
        cls, location: StoreLocation, run_id: str, command: Sequence[Any], started_at: str
    ) -> SiblingSource:
        """The siblings of run ``run_id`` (started at ``started_at``, ISO-8601 UTC) in the
        store at ``location``."""

        def read(config: Mapping[str, Any]) -> Series:
            return read_siblings(location, run_id, command, config, started_at)

        return cls(command, read)

    def key(self, config: Mapping[str, Any]) -> str:
        return sibling_key(self.command, config)

    def lookup(self, config: Mapping[str, Any]) -> SiblingLookup:
        """Begin looking up the siblings of the run with ``config`` (a copy is read)."""
        config = dict(config)
        return SiblingLookup(self.key(config), lambda: self.read(config),
                             timeout_s=self.timeout_s)  # fmt: skip

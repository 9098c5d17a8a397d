"""A run's life: options, meter set, recorder, channel, spawn and signals, track, summary.

Two ways in:

* :func:`run_command` (``greentrain run -- COMMAND``, :mod:`~greentrain.run.spawn`): spawns the
  command as a child process and meters it from outside.
* :func:`track` (notebooks, ``greentrain train``, ``bench``; :mod:`~greentrain.run.track`):
  meters the current process.

Both take a :class:`RunOptions` (or its fields as keywords) and leave a complete record, marked
``finished``, ``failed`` or ``interrupted``. Both run one lifecycle,
:class:`~greentrain.run.session.RunSession`: every write of the run goes to its journal first
and lands in the store from a thread of its own (:mod:`~greentrain.run.applier`), so a store
that is down, locked, hung or full never holds the job up.
"""

from __future__ import annotations

from greentrain.run.meterset import MeterSet
from greentrain.run.options import CarbonOptions, RunOptions, resolve_meter_names
from greentrain.run.spawn import RunResult, run_command
from greentrain.run.summary import print_summary
from greentrain.run.track import Run, track

__all__ = [
    "CarbonOptions",
    "MeterSet",
    "Run",
    "RunOptions",
    "RunResult",
    "print_summary",
    "resolve_meter_names",
    "run_command",
    "track",
]

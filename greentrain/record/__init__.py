"""Pure run-record logic, no I/O: what a record's words mean and how its numbers are decided.

* :mod:`~greentrain.record.vocabulary`: domains, methods and their ranking, statuses.
* :mod:`~greentrain.record.readings`: meter readings and their differences.
* :mod:`~greentrain.record.ranking`: THE best-figure choice per domain (live and stored runs).
* :mod:`~greentrain.record.assemble`: store rows -> the documented run object.
* :mod:`~greentrain.record.group`: a run group's member runs -> one run object with its nodes.
* :mod:`~greentrain.record.split`: a shared machine's energy among concurrent runs.
* :mod:`~greentrain.record.jsonable`: the one JSON cleaning.

Imports only :mod:`greentrain.units` and :mod:`greentrain.errors`; meters, the store, the
harness and the reports all build on it.
"""

from __future__ import annotations

from greentrain.record.ranking import select_best
from greentrain.record.readings import EnergyReading, Readings, diff_readings, readings_rows
from greentrain.record.vocabulary import DOMAINS, METHOD_PRIORITY, STATUSES

__all__ = [
    "DOMAINS",
    "METHOD_PRIORITY",
    "STATUSES",
    "EnergyReading",
    "Readings",
    "diff_readings",
    "readings_rows",
    "select_best",
]

"""One naming scheme and one step for every greentrain number in a tracker: the callbacks (in
the trainer's own logger), ``greentrain run --mirror`` and ``greentrain export --to``.

Every name is ``greentrain/<leaf>`` and no leaf holds a ``/``: MLflow's file store makes
``a/b`` a directory ``a``, so a name may never be the path prefix of another (``epoch`` vs
``epoch/energy_kwh``), and no trainer logs under ``greentrain/``. A window's leaves hold a dot
(``epoch.energy_kwh``), the run's totals none (``energy_kwh``), so a window named like a total
(``cpu``, ``net``) still has names of its own.

The table of every name, its unit and its step is docs/reference/tracker-names.md (a test
holds it to this module). A window's values go at the trainer's step at the window's end (the
last step of the metrics logged in it), else at the window's number (1, 2, ...) among the
windows of its name; the totals at MLflow step 0 and in W&B's summary.

``<window>`` is the window's name (``epoch``, ``eval``) and ``<domain>`` a measured domain
(``gpu``, ``cpu``, ``dram``), each with anything but ASCII letters, digits, ``_`` and ``-``
made ``_``. The metrics the script logged (``val_acc``) keep their own names and steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "greentrain/"
STEP_AXIS = "greentrain/step"  # W&B: what greentrain's own values are plotted against
_LEAF_BAD = re.compile(r"[^A-Za-z0-9_\-]")


def leaf(text: object) -> str:
    """``text`` as a part of a leaf: ASCII letters, digits, ``_`` and ``-`` only."""
    return _LEAF_BAD.sub("_", str(text)).strip("_") or "_"


def window_name(window: object, quantity: str) -> str:
    """The name of one window's ``quantity`` (``energy_kwh``, ``gpu_energy_j``, ...)."""
    return f"{PREFIX}{leaf(window)}.{quantity}"


def total_name(quantity: str) -> str:
    """The name of one of the run's totals."""
    return f"{PREFIX}{quantity}"


def domain_quantity(domain: object) -> str:
    """``<domain>_energy_j``."""
    return f"{leaf(domain)}_energy_j"


def is_greentrain(name: object) -> bool:
    """Whether ``name`` is one of greentrain's own (not the trainer's)."""
    return str(name).startswith(PREFIX)


def last_step(entries: Iterable[Mapping[str, Any]]) -> int | None:
    """The largest integer ``step`` among metric entries (None when none has one)."""
    steps = [
        e.get("step")
        for e in entries
        if isinstance(e, Mapping) and type(e.get("step")) is int and e["step"] >= 0
    ]
    return max(steps) if steps else None

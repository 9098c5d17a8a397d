"""Whole-run figures from a cluster's own accounting, beside greentrain's: SLURM's
``ConsumedEnergyRaw`` (joules) for the job step a run (or a run group) ran in.

The wrapper stores what ``sacct`` said as a ``slurm accounting`` event
(:mod:`greentrain.run.slurm_accounting`); the run object -- a single run's or a group's --
lists it in ``energy_alternatives``, in the shape of a domain's alternatives::

    {"meter": "slurm", "method": "ConsumedEnergyRaw", "energy_j", "disagreement_pct",
     "job", "state", "final", "reason"}

``disagreement_pct`` is ``(slurm - energy_j) / energy_j * 100`` against the run's total
(every domain's best figure). SLURM's figure covers what its energy plugin measures on the
step's nodes (RAPL: CPU packages and DRAM; IPMI or a PDU: the whole node; the GPU plugin: GPUs),
so a gap can be scope as much as error: the disagreement says how far, the docs say why.
``final`` is False while the step was still running when ``sacct`` was asked (its energy then
stops at SLURM's last poll). A figure SLURM did not record has ``energy_j`` None and a
``reason``, never 0 J.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from greentrain.record.ranking import disagreement_pct

SLURM_EVENT = "slurm accounting"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def accounting_alternatives(events: Iterable[Any], energy_j: float | None) -> list[dict[str, Any]]:
    """The run's ``energy_alternatives`` from its (or its members') events, one per job step."""
    out: dict[str, dict[str, Any]] = {}
    for event in events:
        if not isinstance(event, Mapping) or event.get("event") != SLURM_EVENT:
            continue
        joules = _number(event.get("consumed_energy_j"))
        total = _number(energy_j)
        job = str(event.get("job"))
        out[job] = {
            "meter": "slurm", "method": "ConsumedEnergyRaw", "energy_j": joules,
            "disagreement_pct": disagreement_pct(joules, total)
            if joules is not None and total is not None else None,
            "job": job, "state": event.get("state"), "final": bool(event.get("final")),
            "reason": event.get("reason") or None,
        }  # fmt: skip
    return list(out.values())

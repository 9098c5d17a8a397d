"""One energy or carbon budget for a whole sweep (``greentrain sweep ... --budget-kwh X``).

The points a ``greentrain sweep`` command launches share the budget. Before each point starts,
the energy of the sweep's runs since the command began is read from the store (points still
going count with their energy so far, from their samples); if it has reached the budget the
point is not started (its outcome is ``budget``), else it gets what is left as its own budget,
so the point that crosses the line is stopped cleanly too (``greentrain train`` exits 124).

The budget is converted to metered joules once, at the sweep's carbon factors (the points use
the same), so a gCO2e budget and a kWh budget are the same check. With ``--jobs N`` each point
gets what was left when it started, so N points running at once can together pass the budget
by up to N - 1 points' share; the local executor only (the slurm executor submits every point
at once and could not hold later ones back).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from greentrain.record.nesting import counted_once
from greentrain.record.ranking import total_j
from greentrain.report.runs import parse_time
from greentrain.run import RunOptions
from greentrain.run.budget import Budget
from greentrain.store import Store
from greentrain.studies.sweep_plan import Point
from greentrain.units import joules_to_kwh


class SweepBudget:
    """The budget of the points one sweep command launches (see the module docstring)."""

    def __init__(self, run: RunOptions, sweep_id: str, echo: Any = print) -> None:
        factors = run.carbon.factors()
        self.budget = run.budget
        self.limit_j = run.budget.limit_j(factors.intensity_g_per_kwh, factors.pue)
        self.store = run.store
        self.sweep_id = sweep_id
        self.since = time.time()
        self.echo = echo
        self.exhausted = False

    def spent_j(self) -> float:
        """Joules of the sweep's runs started since this command began (0.0 before any)."""
        with Store(self.store) as st:
            runs = st.list_runs(tags={"sweep": self.sweep_id})
        spent = 0.0
        for r, once in zip(runs, counted_once(runs), strict=True):  # a nested run: once
            started = parse_time(r.get("started_at"))
            if not once or started is None or started.timestamp() < self.since - 1.0:
                continue
            energy = total_j(r.get("energy") or {})
            spent += energy or 0.0
        return spent

    def gate(self, point: Point) -> Point | None:
        """``point`` with the budget that is left, or None when none is (do not start it)."""
        if self.limit_j is None:
            return point
        left = self.limit_j - self.spent_j()
        if left <= 0:
            if not self.exhausted:
                self.exhausted = True
                self.echo(
                    f"sweep {self.sweep_id}: budget {self.budget.describe()} reached "
                    f"({joules_to_kwh(self.limit_j - left):.4g} kWh spent); no more points start"
                )
            return None
        budget = Budget(kwh=joules_to_kwh(left), forecast=self.budget.forecast)
        return dataclasses.replace(point, run=dataclasses.replace(point.run, budget=budget))

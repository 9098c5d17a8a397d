"""Energy and carbon budgets: stop a run cleanly when it has spent, or will spend, too much.

A :class:`Budget` is a limit in kWh (energy as metered), in grams CO2e (energy x the run's
intensity x PUE), or both. A :class:`BudgetGuard` checks it every ``check_s`` seconds (sooner
when the power since the last check will reach the limit before the next one) against
what the run has spent so far (the best figure per domain, summed: the record's own total) and
against the latest forecast of the run's total (:mod:`greentrain.run.forecasting`):

* the first time the forecast's *central* figure crosses the budget, a warning line is
  printed -- nothing is stopped;
* when the spend reaches the budget, the guard trips: the record gets a ``budget reached``
  event with the figures that triggered it and ``stop`` is called, which escalates until the
  job has ended (:mod:`greentrain.run.stopping`; :mod:`greentrain.run.oversight` records the
  ``budget`` event once the stop has happened, with its time, energy and overshoot);
* with ``forecast``, it also trips when the forecast's 95% interval lies wholly above
  the budget (its *low* end crosses it): the run would overspend with high confidence.

Under a run group (a multi-node job, :mod:`greentrain.run.group`) the budget is the **whole
group's**: each node's guard checks its own spend plus the other members' as the store has it
(:mod:`greentrain.run.group_budget`), and trips too as soon as another member's guard has
(reason ``group``), so the group stops as one: every node's wrapper stops its own job with the
same escalation. ``per_node`` (``--budget-per-node``) keeps a budget per node instead.

A run its budget stopped has the status ``budget`` and the exit code
:data:`greentrain.errors.EXIT_BUDGET` (124, as ``timeout`` exits when its limit is hit); one
that could not be stopped keeps its own status, and its record says the stop failed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greentrain.errors import ConfigError
from greentrain.record.forecast import Forecast
from greentrain.units import co2_g, joules_to_kwh, kwh_to_joules

CHECK_S = 1.0  # seconds between two checks of the spend (at most)
MIN_CHECK_S = 0.02  # seconds: the shortest wait when the limit is near


def _check(flag: str, value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a number of {unit} > 0 (got {value!r})") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{flag} must be a finite number of {unit} > 0 (got {value})")
    return number


@dataclass(frozen=True)
class Budget:
    """What a run may spend. Validated on construction (one-line ConfigError).

    Attributes:
        kwh: energy budget, kWh as metered (no PUE), or None.
        gco2: emissions budget, grams CO2e at the run's intensity and PUE, or None.
        forecast: also stop when the forecast's 95% interval lies above the budget.
        per_node: under a run group, the budget is each node's own, not the group's.
    """

    kwh: float | None = None
    gco2: float | None = None
    forecast: bool = False
    per_node: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwh", _check("--budget-kwh", self.kwh, "kWh"))
        object.__setattr__(self, "gco2", _check("--budget-gco2", self.gco2, "grams CO2e"))

    @property
    def active(self) -> bool:
        return self.kwh is not None or self.gco2 is not None

    def limit_j(self, intensity_g_per_kwh: float, pue: float = 1.0) -> float | None:
        """The binding limit in metered joules (the smaller of the two), or None if none."""
        limits = []
        if self.kwh is not None:
            limits.append(kwh_to_joules(self.kwh))
        if self.gco2 is not None and intensity_g_per_kwh > 0:
            limits.append(kwh_to_joules(self.gco2 / (intensity_g_per_kwh * pue)))
        return min(limits) if limits else None

    def describe(self) -> str:
        parts = []
        if self.kwh is not None:
            parts.append(f"{self.kwh:g} kWh")
        if self.gco2 is not None:
            parts.append(f"{self.gco2:g} gCO2e")
        return " / ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"kwh": self.kwh, "gco2": self.gco2, "forecast": self.forecast,
                "per_node": self.per_node}  # fmt: skip


class BudgetGuard:
    """Checks a :class:`Budget` every ``check_s`` seconds in a daemon thread (see module doc).

    Args:
        budget: the limits.
        intensity_g_per_kwh, pue: the run's carbon factors (for a gCO2e budget).
        spent_j: the run's energy so far, joules (None while nothing measures).
        forecast: the latest forecast of the run's total, or None.
        stop: called once, from the guard's thread, with the ``budget reached`` event's
            fields: asks the job to stop.
        note: records an event on the run (``note("budget reached", **fields)``).
        say: prints one line for the user (default: stderr, prefixed ``greentrain:``).
        stopped_elsewhere: the other members of the run's group whose budget already tripped
            (a group budget: the group stops as one); none by default.
    """

    def __init__(
        self,
        budget: Budget,
        *,
        intensity_g_per_kwh: float,
        pue: float,
        spent_j: Callable[[], float | None],
        forecast: Callable[[], Forecast | None] = lambda: None,
        stop: Callable[[dict[str, Any]], None],
        note: Callable[..., None] = lambda *a, **k: None,
        say: Callable[[str], None] | None = None,
        check_s: float = CHECK_S,
        stopped_elsewhere: Callable[[], list[str]] = lambda: [],
    ) -> None:
        self.budget = budget
        self.intensity = intensity_g_per_kwh
        self.pue = pue
        self.limit_j = budget.limit_j(intensity_g_per_kwh, pue)
        self._spent_j = spent_j
        self._forecast = forecast
        self._stop_fn = stop
        self._note = note
        self._say = say or _warn
        self._stopped_elsewhere = stopped_elsewhere
        self.check_s = check_s
        self.tripped: dict[str, Any] | None = None
        self.warned = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] | None = None  # (monotonic s, joules) of the last check
        self._before: tuple[float, float] | None = None

    def start(self) -> None:
        if self.limit_j is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="greentrain-budget", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop checking (idempotent); the run has ended."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._done.wait(self._next_wait()):
            if self.check() is not None:
                return

    def _next_wait(self) -> float:
        """Seconds to the next check: ``check_s``, or sooner when the power between the last
        two checks will reach the limit before then (so the stop is not a check late)."""
        wait = self.check_s
        last, before = self._last, self._before
        if self.limit_j is not None and last is not None and before is not None:
            (t1, spent1), (t0, spent0) = last, before
            if t1 > t0 and spent1 > spent0:
                power = (spent1 - spent0) / (t1 - t0)
                wait = min(wait, max(MIN_CHECK_S, (self.limit_j - spent1) / power))
        return wait

    def figures(self, energy_j: float) -> dict[str, float]:
        """kWh and gCO2e of ``energy_j`` metered joules at the run's factors."""
        return {"kwh": joules_to_kwh(energy_j), "gco2": co2_g(energy_j, self.intensity, self.pue)}

    def check(self) -> dict[str, Any] | None:
        """One check now; the ``budget`` event's fields if it tripped (now or before)."""
        with self._lock:
            if self.tripped is not None or self.limit_j is None:
                return self.tripped
            spent = self._spent_j()
            if spent is not None:
                self._before, self._last = self._last, (time.monotonic(), spent)
            fc = self._forecast()
            if fc is not None and not self.warned and fc.total_j >= self.limit_j:
                self.warned = True
                low = "" if fc.low_j is None else f", 95% interval from {_kwh(fc.low_j)}"
                self._say(
                    f"forecast {_kwh(fc.total_j)} at the end{low} is over the budget "
                    f"({self.budget.describe()}) after {fc.epochs_done}/{fc.epochs_total} epochs"
                )
                self._note("budget forecast crossed", forecast_j=fc.total_j, low_j=fc.low_j,
                           limit_j=self.limit_j)  # fmt: skip
            reason = None
            if spent is not None and spent >= self.limit_j:
                reason = "spent"
            elif (
                self.budget.forecast
                and fc is not None
                and fc.low_j is not None
                and fc.low_j >= self.limit_j
            ):
                reason = "forecast"
            elsewhere = self._stopped_elsewhere() if reason is None else []
            if elsewhere:
                reason = "group"
            if reason is None:
                return None
            self.tripped = {
                "reason": reason,
                "budget": self.budget.to_dict(),
                "limit_j": self.limit_j,
                "spent_j": spent,
                "spent": self.figures(spent) if spent is not None else None,
                "forecast": fc.to_dict() if fc is not None else None,
            }
            if elsewhere:
                self.tripped["stopped_by"] = elsewhere
        what = (
            f"spent {_kwh(spent)}" if reason == "spent"
            else f"the group's budget stopped run {', '.join(elsewhere)}" if reason == "group"
            else f"the forecast's 95% interval starts at {_kwh(fc.low_j)}"
        )  # fmt: skip
        self._say(f"budget {self.budget.describe()} reached ({what}); stopping the job")
        self._note("budget reached", **self.tripped)
        self._stop_fn(self.tripped)
        return self.tripped


def _kwh(energy_j: float) -> str:
    return f"{joules_to_kwh(energy_j):.4g} kWh"


def _warn(message: str) -> None:
    """Log ``greentrain: message`` as a warning (the CLI shows it on stderr)."""
    logging.getLogger("greentrain.run").warning("greentrain: %s", message)

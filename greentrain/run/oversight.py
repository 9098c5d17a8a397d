"""What watches a run as it goes, for ``greentrain run`` and ``track()`` alike: its forecast and
its budget.

:class:`Oversight` joins a :class:`~greentrain.run.forecasting.ForecastListener` (a listener of
the run's windows) and, when the run has a budget, a :class:`~greentrain.run.budget.BudgetGuard`
fed by the recorder's energy so far and the latest forecast. The forecast looks the run's
finished sibling runs up in the run's store (:mod:`greentrain.run.sibling_lookup`) from
:meth:`Oversight.start` on, except in a run of a multi-node group (siblings are single runs).
Each forecast is stored at once as a ``forecast`` event (so the app can plot forecast against
actual, and a dead wrapper keeps them); a few of them -- the first, and those after 10%, 25%,
50% and 75% of the epochs -- are also logged (INFO; the CLI shows them on stderr), since under
``greentrain run`` the job's own progress bar cannot know them.

When the budget trips, the run's *stopper* (:mod:`greentrain.run.stopping`) escalates until
the job has ended; each step is stored as a ``budget stop`` event. When the run's owner says the
job has ended (:meth:`Oversight.close`), the ``budget`` event is stored with the time and the
energy at which the job stopped and the overshoot (energy at the stop / the limit - 1); only
then does :attr:`Oversight.tripped` say the budget stopped the run. An epoch the stop cut short
is not fed to the forecast.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from greentrain.record.forecast import Forecast
from greentrain.run.budget import BudgetGuard
from greentrain.run.forecasting import ForecastListener, progress_text
from greentrain.run.options import RunOptions
from greentrain.run.sibling_lookup import SiblingSource
from greentrain.run.stopping import Escalation
from greentrain.units import iso_utc, joules_to_kwh

_log = logging.getLogger("greentrain.run")
MILESTONES = (0.0, 0.10, 0.25, 0.50, 0.75)  # fractions of the epochs when a forecast is said


class Stopper(Protocol):
    """How a run's job is stopped: :class:`~greentrain.run.stopping.GroupStop` or
    :class:`~greentrain.run.stopping.InProcessStop`."""

    def arm(self) -> None: ...
    def disarm(self) -> None: ...
    def escalation(self, **hooks: Any) -> Escalation | None: ...


def say(message: str, level: int = logging.WARNING) -> None:
    """Log ``greentrain: message`` (logger ``greentrain.run``): the CLI shows it as one stderr
    line; a library user's ``logging`` configuration decides (warnings show by default)."""
    _log.log(level, "greentrain: %s", message)


class Oversight:
    """The forecast and the budget of one run.

    Args:
        options: the run's options (``epochs``, ``budget``).
        intensity_g_per_kwh, pue: the run's carbon factors.
        stopper: stops the job when the budget trips (escalating; see the module docstring).
        print_forecasts: log milestone forecasts (INFO, logger ``greentrain.run``).
    """

    def __init__(
        self,
        options: RunOptions,
        *,
        intensity_g_per_kwh: float,
        pue: float,
        stopper: Stopper,
        print_forecasts: bool = True,
    ) -> None:
        self.options = options
        self.forecaster = ForecastListener(
            options.epochs, intensity_g_per_kwh=intensity_g_per_kwh, pue=pue,
            on_forecast=self._on_forecast,
        )  # fmt: skip
        self.intensity, self.pue = intensity_g_per_kwh, pue
        self.print_forecasts = print_forecasts
        self.stopper = stopper
        self._recorder: Any = None
        self._group_spend: Any = None
        self._said = 0
        self.guard: BudgetGuard | None = None
        self.escalation: Escalation | None = None
        self.requested: dict[str, Any] | None = None  # the ``budget reached`` fields
        self.outcome: dict[str, Any] | None = None  # the ``budget`` event, once settled
        self._closed = False
        self._lock = threading.Lock()

    @property
    def listeners(self) -> list[Any]:
        return [self.forecaster]

    def start(self, recorder: Any, group_spend: Any = None) -> None:
        """Begin watching ``recorder``'s run (its clock has started); from the job's thread.
        ``group_spend``: a group budget's view of the whole group's spend
        (:class:`~greentrain.run.group_budget.GroupSpendPoller`; closed with this object)."""
        self._recorder = recorder
        if recorder.group is None:  # a group's nodes are no one's siblings:
            self.forecaster.use_siblings(SiblingSource.of_store(  # 64 nodes, no 64 lookups
                recorder.writes.location, recorder.run_id, recorder.command,
                iso_utc(recorder.label0),
            ))  # fmt: skip
        if not self.options.budget.active:
            return
        self.stopper.arm()
        self._group_spend = group_spend
        if group_spend is not None:
            group_spend.start()
        self.guard = BudgetGuard(
            self.options.budget, intensity_g_per_kwh=self.intensity, pue=self.pue,
            spent_j=group_spend.spent_j if group_spend is not None else recorder.spent_j,
            forecast=lambda: self.forecaster.latest, stop=self._request_stop,
            note=recorder.event_now, say=say,
            stopped_elsewhere=group_spend.stopped if group_spend is not None else lambda: [],
        )  # fmt: skip
        recorder.event_now("budget set", **self.options.budget.to_dict(),
                           limit_j=self.guard.limit_j, grace_s=self.options.grace_s)  # fmt: skip
        self.guard.start()

    def _request_stop(self, tripped: dict[str, Any]) -> None:
        """The guard tripped: start the stopper's escalation (from the guard's thread)."""
        with self._lock:
            if self.requested is not None or self._closed:
                return  # asked already, or the job has ended: nothing to stop
            self.requested = dict(tripped, requested_unix=time.time())
            self.forecaster.stop_requested(time.time())
            self.escalation = self.stopper.escalation(on_step=self._on_step,
                                                      on_give_up=self._on_give_up)  # fmt: skip
        if self.escalation is not None:
            self.escalation.start()

    def _on_step(self, step: str) -> None:
        if self._recorder is not None:
            self._recorder.event_now("budget stop", step=step)
        if step not in ("SIGINT", "interrupt"):
            say(f"the job is still running: {step} (escalating the budget's stop)")

    def _on_give_up(self) -> None:
        message = "the job could not be stopped: it is still running after every step of the stop"
        if self._recorder is not None:
            self._recorder.event_now("budget stop failed", detail=message)
        say(f"budget: {message}; its record will say so")

    def close(self) -> None:
        """The job has ended (or the run is ending): settle the budget's stop (idempotent)."""
        if self.guard is not None:
            self.guard.close()
        if self._group_spend is not None:
            self._group_spend.close()
        with self._lock:
            self._closed = True
            escalation, requested = self.escalation, self.requested
            if self.outcome is not None or requested is None:
                self.stopper.disarm()
                return
        self.stopper.disarm()  # first: a step taken now must not interrupt the settling
        result = escalation.finish() if escalation is not None else None
        spent = self._recorder.spent_j() if self._recorder is not None else None
        limit = requested.get("limit_j")
        stopped = bool(result and result["stopped"])
        outcome = dict(requested)
        outcome.update(
            stopped=stopped,
            stopped_unix=time.time(),
            stop_s=result["stop_s"] if result else None,
            steps=result["steps"] if result else [],
            spent_at_request_j=requested.get("spent_j"),
            spent_j=spent,
            spent=self.guard.figures(spent) if spent is not None and self.guard else None,
            overshoot=(spent / limit - 1.0) if spent is not None and limit else None,
        )
        with self._lock:
            self.outcome = outcome
        if self._recorder is not None:
            self._recorder.event_now("budget" if stopped else "budget overspent", **outcome)
        if stopped:
            over = "" if outcome["overshoot"] is None else f", {outcome['overshoot']:+.1%} of it"
            at = "" if spent is None else f" at {joules_to_kwh(spent):.4g} kWh{over}"
            say(
                f"the job stopped {outcome['stop_s']:.1f} s after its budget was reached{at}",
                logging.INFO,
            )

    @property
    def stop_requested(self) -> bool:
        """True once the budget has asked the job to stop."""
        return self.requested is not None

    @property
    def tripped(self) -> dict[str, Any] | None:
        """The ``budget`` event's fields once the budget has stopped the job, else None (a
        job that ran on past every step of the stop was not stopped by it)."""
        outcome = self.outcome
        return outcome if outcome is not None and outcome["stopped"] else None

    def text(self) -> str | None:
        """The latest forecast for a progress bar (``≈ 0.42 kWh at end, ±0.03``)."""
        return progress_text(self.forecaster.latest)

    def _on_forecast(self, made: Forecast) -> None:
        if self._recorder is not None:
            self._recorder.event_now("forecast", **self.forecaster.event(made))
        if self.guard is not None:
            self.guard.check()  # a new forecast: warn (or stop) now, not at the next tick
        fraction = made.epochs_done / made.epochs_total if made.epochs_total else 1.0
        due = [m for m in MILESTONES[self._said :] if fraction >= m]
        if not due or made.epochs_done >= made.epochs_total:
            return
        self._said += len(due)
        if self.print_forecasts:
            say(f"forecast {progress_text(made)} (after epoch {made.epochs_done} of "
                f"{made.epochs_total})", logging.INFO)  # fmt: skip

"""What watches a run as it goes, for ``greentrain run`` and ``track()`` alike: its forecast and
its budget.

:class:`Oversight` joins a :class:`~greentrain.run.forecasting.ForecastListener` (a listener of
the run's windows) and, when the run has a budget, a :class:`~greentrain.run.budget.BudgetGuard`
fed by the recorder's energy so far and the latest forecast. Each forecast is stored at once as
a ``forecast`` event (so the app can plot forecast against actual, and a dead wrapper keeps
them); a few of them -- the first, and those after 10%, 25%, 50% and 75% of the epochs -- are
also printed on stderr, since under ``greentrain run`` the job's own progress bar cannot know
them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from greentrain.record.forecast import Forecast
from greentrain.run.budget import BudgetGuard
from greentrain.run.forecasting import ForecastListener, progress_text
from greentrain.run.options import RunOptions

MILESTONES = (0.0, 0.10, 0.25, 0.50, 0.75)  # fractions of the epochs when a forecast is said


def say(message: str) -> None:
    """One ``greentrain:`` line on stderr, if there is one."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            print(f"greentrain: {message}", file=sys.stderr, flush=True)


class Oversight:
    """The forecast and the budget of one run.

    Args:
        options: the run's options (``epochs``, ``budget``).
        intensity_g_per_kwh, pue: the run's carbon factors.
        stop: asks the job to stop; called once, with the ``budget`` event's fields.
        print_forecasts: print milestone forecasts on stderr.
    """

    def __init__(
        self,
        options: RunOptions,
        *,
        intensity_g_per_kwh: float,
        pue: float,
        stop: Callable[[dict[str, Any]], None],
        print_forecasts: bool = True,
    ) -> None:
        self.options = options
        self.forecaster = ForecastListener(
            options.epochs, intensity_g_per_kwh=intensity_g_per_kwh, pue=pue,
            on_forecast=self._on_forecast,
        )  # fmt: skip
        self.intensity, self.pue = intensity_g_per_kwh, pue
        self.print_forecasts = print_forecasts
        self._stop = stop
        self._recorder: Any = None
        self._said = 0
        self.guard: BudgetGuard | None = None

    @property
    def listeners(self) -> list[Any]:
        return [self.forecaster]

    def start(self, recorder: Any) -> None:
        """Begin watching ``recorder``'s run (its clock has started)."""
        self._recorder = recorder
        if not self.options.budget.active:
            return
        self.guard = BudgetGuard(
            self.options.budget, intensity_g_per_kwh=self.intensity, pue=self.pue,
            spent_j=recorder.spent_j, forecast=lambda: self.forecaster.latest,
            stop=self._stop, note=recorder.event_now, say=say,
        )  # fmt: skip
        recorder.event_now("budget set", **self.options.budget.to_dict(),
                           limit_j=self.guard.limit_j)  # fmt: skip
        self.guard.start()

    def close(self) -> None:
        if self.guard is not None:
            self.guard.close()

    @property
    def tripped(self) -> dict[str, Any] | None:
        """The ``budget`` event's fields once the budget stopped the run, else None."""
        return self.guard.tripped if self.guard is not None else None

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
                f"{made.epochs_total})")  # fmt: skip

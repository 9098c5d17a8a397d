"""Rich progress bars for the training loops: one bar per epoch with loss, accuracy, drop rate
and, when the run is metered, the current power in watts and the forecast of the run's energy
at its end (``≈ 0.42 kWh at end, ±0.03``, :mod:`greentrain.run.forecasting`).

Quiet (no output at all) when stderr is not a terminal, when disabled, or on ranks other than 0.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """A context manager around ``rich.progress.Progress``.

    ``power_w`` is an optional callable returning the current power draw in watts (or None when
    unknown); it is polled at most once a second and shown only when it returns a number.
    ``forecast`` returns the run's forecast as text (or None before there is one); it is
    asked at each epoch's start and end.
    """

    def __init__(
        self,
        enabled: bool = True,
        power_w: Callable[[], float | None] | None = None,
        forecast: Callable[[], str | None] | None = None,
    ):
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self._power_w = power_w
        self._forecast = forecast
        self._forecast_text = ""
        self._progress: Any = None
        self._task: Any = None
        self._last_power_t = 0.0
        self._power_text = ""

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        """Begin the bar of ``epoch`` (0-based) of ``epochs`` with ``steps`` iterations."""
        if self._progress is None:
            return
        self._refresh_forecast()
        self._task = self._progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, info="")

    def _power(self) -> str:
        if self._power_w is None:
            return ""
        now = time.monotonic()
        if now - self._last_power_t >= 1.0:
            self._last_power_t = now
            try:
                watts = self._power_w()
            except Exception:  # a meter hiccup must never break training
                watts = None
            self._power_text = f" power {watts:.0f} W" if watts is not None else ""
        return self._power_text

    def _refresh_forecast(self) -> None:
        if self._forecast is None:
            return
        try:
            text = self._forecast()
        except Exception:  # a forecast hiccup must never break training
            text = None
        self._forecast_text = f" {text}" if text else ""

    def advance(self, *, loss: float, drop_rate: float) -> None:
        """One iteration done."""
        if self._progress is None or self._task is None:
            return
        info = f"loss {loss:.4f} drop {drop_rate:.2f}{self._power()}{self._forecast_text}"
        self._progress.update(self._task, advance=1, info=info)

    def end_epoch(self, *, loss: float, acc: float | None, drop_rate: float) -> None:
        """Show the epoch's summary on its bar."""
        if self._progress is None or self._task is None:
            return
        acc_text = f" acc {acc:.4f}" if acc is not None else ""
        self._refresh_forecast()
        info = f"loss {loss:.4f}{acc_text} drop {drop_rate:.2f}{self._power()}{self._forecast_text}"
        self._progress.update(self._task, info=info)
        self._task = None

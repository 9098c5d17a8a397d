"""A run's forecast, kept current as epochs close: a listener (:mod:`greentrain.run.listeners`).

:class:`ForecastListener` follows a run's windows named ``epoch``. After each one it forecasts
the run's total energy with :func:`greentrain.record.forecast.forecast` from

* the joules of each epoch window seen (the sum of its domains' best figures);
* the number of epochs the run will have: given (``greentrain run --epochs``), else the first
  of ``epochs``, ``max_epochs``, ``num_train_epochs`` the job passed to ``client.config``
  (the built-in jobs, the Lightning and Transformers callbacks pass one);
* each epoch's backward FLOPs where the job passed ``backward_flops_per_epoch`` (the built-in
  jobs do when a drop scheduler is on, so a bar schedule's cheap and dear epochs are told
  apart).

Epoch windows are numbered by their ``index`` info when the job gives one (a resumed run starts
at its first epoch left), else counted. The forecast's ``spent`` is the run's whole energy at
the end of the latest epoch (its setup and evaluations outside epoch windows included), so the
total is ``spent + predicted remaining epochs``; work after the last epoch (a final
evaluation, sampling) is not forecast.

An epoch window that closes after the run's stop was asked for (a budget stop mid-epoch) is a
partial epoch: it is counted in :attr:`ForecastListener.partial_epochs` and never fed to the
forecast, which would read it as a cheap epoch.

With a :class:`~greentrain.run.sibling_lookup.SiblingSource` (:meth:`ForecastListener.use_siblings`;
:class:`~greentrain.run.oversight.Oversight` gives every run its store's) the forecast also gets
the prior of the run's finished *sibling* runs (:mod:`greentrain.run.sibling_lookup`: same
command and config but seed, name, tags and store; ended before this run started). The lookup
begins when the job passes its config (again if the config changes before a forecast), runs
in a thread of its own, and the first forecast waits for it at most a few seconds (on this
listener's thread, never the job's). Each forecast says how many siblings its prior came from
(``siblings``, 0 without a prior) and, where none was used, why (``siblings_note``: no
siblings in the store, too few with every epoch measured, the store did not answer).

Each forecast is handed to ``on_forecast`` (the recorder stores it as a ``forecast`` event with
its time, the progress bar shows it) and kept as :attr:`ForecastListener.latest` for a budget.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from greentrain.record.forecast import Forecast, forecast
from greentrain.record.jsonable import to_jsonable
from greentrain.record.ranking import total_j
from greentrain.record.siblings import MIN_SIBLINGS, SiblingPrior, sibling_prior
from greentrain.run.sibling_lookup import SiblingLookup, SiblingSource
from greentrain.units import co2_g, joules_to_kwh

EPOCH_KEYS = ("epochs", "max_epochs", "num_train_epochs")
NO_SIBLINGS = "no finished sibling run in the store"  # the usual case: not worth a summary line
EPOCH_WINDOW = "epoch"


def epochs_from_config(params: Mapping[str, Any]) -> int | None:
    """The run's number of epochs from a job's ``client.config`` params, if it gave one."""
    for key in EPOCH_KEYS:
        value = params.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value) and value >= 1:
            return math.ceil(value)
    return None


class ForecastListener:
    """Forecasts a run's total energy after every epoch (see the module docstring).

    Args:
        epochs: epochs the run will have (None: from the job's config).
        intensity_g_per_kwh, pue: the run's carbon factors, for the CO2e of a forecast.
        on_forecast: called with each new :class:`Forecast` (from the listener thread).
    """

    def __init__(
        self,
        epochs: int | None = None,
        *,
        intensity_g_per_kwh: float | None = None,
        pue: float = 1.0,
        on_forecast: Callable[[Forecast], None] | None = None,
    ) -> None:
        self.given_epochs = epochs
        self.config_epochs: int | None = None
        self.flops: list[float] | None = None
        self.intensity = intensity_g_per_kwh
        self.pue = pue
        self.on_forecast = on_forecast
        self.epoch_j: list[float] = []
        self.first_index: int | None = None
        self.last_index = -1
        self.run_spent_j: float | None = None
        self.partial_epochs = 0
        self._stop_unix: float | None = None
        self._lock = threading.Lock()
        self._latest: Forecast | None = None
        self.config: dict[str, Any] = {}  # what the job passed to client.config, merged
        self._source: SiblingSource | None = None
        self._lookup: SiblingLookup | None = None
        self._prior: tuple[Any, ...] | None = None  # (series, first, total, prior, note)

    @property
    def latest(self) -> Forecast | None:
        """The newest forecast, or None before the first epoch (or without an epoch count)."""
        with self._lock:
            return self._latest

    @property
    def epochs(self) -> int | None:
        return self.given_epochs if self.given_epochs is not None else self.config_epochs

    def stop_requested(self, unix: float) -> None:
        """The run was asked to stop at ``unix`` (seconds): an epoch that ends later is cut."""
        self._stop_unix = unix

    def use_siblings(self, source: SiblingSource | None) -> None:
        """Give forecasts the prior of the run's sibling runs, looked up through ``source``
        (None: none); a config already seen is looked up at once."""
        self._source = source
        if source is not None and self.config:
            self._ask()

    # -- listener events ------------------------------------------------------------------------
    def on_config(self, event: Mapping[str, Any]) -> None:
        params = event.get("params") or {}
        if isinstance(params, Mapping):
            jsonable = to_jsonable(dict(params))  # as the store keeps it (the siblings' key)
            self.config.update(jsonable if isinstance(jsonable, dict) else {})
            if self._source is not None:
                self._ask()
        self.config_epochs = epochs_from_config(params) or self.config_epochs
        flops = params.get("backward_flops_per_epoch")
        if isinstance(flops, list) and all(isinstance(f, (int, float)) for f in flops):
            self.flops = [float(f) for f in flops]

    def on_window(self, event: Mapping[str, Any]) -> None:
        if event.get("name") != EPOCH_WINDOW:
            return
        energy = total_j(event.get("energy") or {})
        if energy is None:
            return  # nothing measured this epoch: no forecast rather than a wrong one
        ended = event.get("ended_unix")
        if self._stop_unix is not None and (not isinstance(ended, (int, float))
                                            or ended >= self._stop_unix):  # fmt: skip
            self.partial_epochs += 1
            return  # cut short by the stop: not an epoch's cost
        info = event.get("info") if isinstance(event.get("info"), Mapping) else {}
        index = info.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index <= self.last_index:
            index = self.last_index + 1
        if self.first_index is None:
            self.first_index = index
        self.last_index = index
        self.epoch_j.append(energy)
        run_energy = event.get("run_energy")
        self.run_spent_j = total_j(run_energy) if isinstance(run_energy, Mapping) else None
        made = self.update()
        if made is not None and self.on_forecast is not None:
            self.on_forecast(made)

    # -- the forecast -----------------------------------------------------------------------------
    def update(self) -> Forecast | None:
        """Forecast from the epochs seen so far (None without an epoch count)."""
        epochs = self.epochs
        if epochs is None or not self.epoch_j or self.first_index is None:
            return None
        first = self.first_index
        total = max(epochs - first, self.last_index + 1 - first)
        flops = self.flops[first:epochs] if self.flops and len(self.flops) >= epochs else None
        prior, note = self._sibling_prior(first, total)
        made = forecast(self.epoch_j, total, flops, prior)
        if note:
            made = dataclasses.replace(made, siblings_note=note)
        outside = 0.0
        if self.run_spent_j is not None:
            outside = max(0.0, self.run_spent_j - made.spent_j)
        made = made.shifted(outside, done_offset=first)
        with self._lock:
            self._latest = made
        return made

    def _ask(self) -> SiblingLookup | None:
        """The lookup of the current config's siblings (begun now if there is none for it)."""
        source = self._source
        if source is None:
            return None
        if self._lookup is None or self._lookup.key != source.key(self.config):
            self._lookup, self._prior = source.lookup(self.config), None
        return self._lookup

    def _sibling_prior(self, first: int, total: int) -> tuple[SiblingPrior | None, str]:
        """The siblings' prior for epochs ``first`` to ``first + total`` of the run, and why
        there is none ("" when there is, or when no lookup was asked for)."""
        lookup = self._ask()
        if lookup is None:
            return None, ""
        series, why = lookup.result()
        if series is None:
            return None, why
        cached = self._prior
        if cached is not None and cached[0] is series and cached[1:3] == (first, total):
            return cached[3], cached[4]
        prior = sibling_prior([s[first:] for s in series], total)
        note = ""
        if prior is None:
            usable = sum(len(s) >= first + total for s in series)
            note = (
                NO_SIBLINGS if not series else
                f"{usable} sibling run{'s' if usable != 1 else ''} with all {total} epochs"
                f" measured (a prior needs {MIN_SIBLINGS})"
            )  # fmt: skip
        self._prior = (series, first, total, prior, note)
        return prior, note

    def event(self, made: Forecast) -> dict[str, Any]:
        """The ``forecast`` event's fields: joules, kWh and (with an intensity) gCO2e."""
        out: dict[str, Any] = made.to_dict()
        out["total_kwh"] = joules_to_kwh(made.total_j)
        if self.intensity is not None:
            out["total_gco2"] = co2_g(made.total_j, self.intensity, self.pue)
        return out


def progress_text(made: Forecast | None) -> str | None:
    """``≈ 0.42 kWh at end, ±0.03`` for a progress bar (None without a forecast); small runs
    in Wh or J, the interval's half-width in the same unit -- or, when it is not symmetric
    (its low end held at what was spent, or two models averaged), the interval itself
    (``≈ 0.42 kWh at end, 95% 0.30-0.61``); with a sibling prior, how many runs it came from
    (``..., prior from 3 sibling runs``)."""
    if made is None:
        return None
    kwh = joules_to_kwh(made.total_j)
    unit, scale = ("kWh", 3.6e6) if kwh >= 0.01 else ("Wh", 3.6e3) if kwh >= 1e-3 else ("J", 1.0)
    value = made.total_j / scale
    digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 0
    text = f"≈ {value:.{digits}f} {unit} at end"
    if made.low_j is not None and made.high_j is not None:
        above, below = made.high_j - made.total_j, made.total_j - made.low_j
        if abs(above - below) <= 1e-9 * max(made.total_j, 1.0):
            half = above / scale  # never shown as ±0: one significant digit at least
            shown = max(digits, -math.floor(math.log10(half))) if half > 0 else digits
            text += f", ±{half:.{shown}f}"
        else:  # not symmetric: say the interval as it is
            text += f", 95% {made.low_j / scale:.{digits}f}-{made.high_j / scale:.{digits}f}"
    if made.siblings:
        text += f", {siblings_text(made.siblings)}"
    return text


def siblings_text(siblings: int) -> str:
    """``prior from 3 sibling runs``."""
    return f"prior from {siblings} sibling run{'s' if siblings != 1 else ''}"

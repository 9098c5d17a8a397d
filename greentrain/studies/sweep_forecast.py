"""What a whole sweep will cost, before it runs: ``greentrain sweep ... --dry-run-forecast``.

Every point of the sweep -- every seed of every configuration -- gets a figure of its own:

* **measured**: the point has finished (the store has its run): its measured energy, exactly;
* **predicted**: else a *probe* of that very point (its own seed, not a sibling's) is trained
  for its first ``probe_epochs`` epochs (``greentrain train --stop-after-epoch K``), recorded as
  ``<point name>-probe`` with the tags ``sweep-probe=<sweep id>`` and ``point=<key>`` (so it
  never counts as the point, and running the dry run again reuses it), and forecast to the
  point's full length with :func:`greentrain.record.forecast.forecast` -- the live forecast's
  method, with its 95% interval -- plus what the probe spent outside its epochs (setup,
  evaluation). Where another seed of the point's configuration has finished, the forecast
  also gets the prior of that configuration's finished sibling runs in the store, by the live
  forecast's rule (:mod:`greentrain.run.sibling_lookup`: the same command and config but for
  seed, name, tags and store; any sweep's); the point's source says from how many.

Seeds are never assumed to cost the same: a seed's data order and drop pattern change what
its epochs cost, and one seed's run said nothing certain about another's (issue 22: 178 J
against 362 J).

The sweep's total is the sum over points. Its 95% half-width, from how far each predicted
point's interval reaches above its figure (the low end may be held at what was spent): the
predicted points of one configuration are added linearly (their forecasts share the
configuration's model error, so they are treated as one draw), configurations in quadrature
(independent); measured points add nothing. A predicted point without an interval (a
one-epoch probe) leaves the total without one, and says so. Joules throughout; kWh and gCO2e
(at the sweep's intensity and PUE) only for display. What the probes spent is reported beside
the total, not in it.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from greentrain.errors import ConfigError, StoreError
from greentrain.record.forecast import Forecast, forecast
from greentrain.record.ranking import total_j
from greentrain.record.siblings import SiblingPrior, sibling_prior
from greentrain.report.backtest import epoch_series
from greentrain.run.budget import Budget
from greentrain.run.forecasting import siblings_text
from greentrain.run.options import StoreLike
from greentrain.run.sibling_lookup import read_siblings
from greentrain.store import Store, locate
from greentrain.studies.sweep import child_env, finished_points, train_command
from greentrain.studies.sweep_plan import Point, SweepPlan
from greentrain.units import co2_g, iso_utc, joules_to_kwh

PROBE_TAG = "sweep-probe"


def configuration(key: str) -> str:
    """A point key without its seed: the points that compute the same thing."""
    return ",".join(part for part in key.split(",") if not part.startswith("seed="))


@dataclass(frozen=True)
class PointForecast:
    """One point's figure (joules): measured (a finished run) or predicted (its own probe)."""

    key: str
    measured: bool
    source: str
    made: Forecast

    @property
    def configuration(self) -> str:
        return configuration(self.key)

    @property
    def total_j(self) -> float:
        return self.made.total_j

    @property
    def half_width_j(self) -> float | None:
        """0 for a measured point; else how far the forecast's 95% interval reaches above its
        figure (its low end may be held at what was spent), None without an interval."""
        if self.measured:
            return 0.0
        return None if self.made.high_j is None else self.made.high_j - self.made.total_j


@dataclass(frozen=True)
class SweepForecast:
    """The figure of every point of one sweep, and what the probes cost (joules)."""

    sweep_id: str
    rows: list[PointForecast]
    probes_j: float
    intensity_g_per_kwh: float
    pue: float

    @property
    def total_j(self) -> float:
        return math.fsum(r.total_j for r in self.rows)

    @property
    def measured_j(self) -> float:
        return math.fsum(r.total_j for r in self.rows if r.measured)

    @property
    def half_width_j(self) -> float | None:
        """The 95% half-width of the total (see the module docstring); None when a predicted
        point has no interval."""
        by_configuration: dict[str, float] = {}
        for r in self.rows:
            half = r.half_width_j
            if half is None:
                return None
            by_configuration[r.configuration] = by_configuration.get(r.configuration, 0.0) + half
        return math.sqrt(math.fsum(h * h for h in by_configuration.values()))

    def lines(self) -> list[str]:
        """A table of the points, then the sweep's total in kWh and gCO2e."""
        out = [f"{'point':62s} {'figure':9s} {'kWh':>11s} {'± 95%':>9s}  source"]
        for r in self.rows:
            half = r.half_width_j
            half_text = "-" if half is None else f"{joules_to_kwh(half):.3g}"
            kind = "measured" if r.measured else "predicted"
            out.append(f"{r.key:62s} {kind:9s} {joules_to_kwh(r.total_j):11.4g} "
                       f"{half_text:>9s}  {r.source}")  # fmt: skip
            if r.made.note:
                out.append(f"{'':62s} note: {r.made.note}")
        total, half = self.total_j, self.half_width_j
        kwh = joules_to_kwh(total)
        if all(r.measured for r in self.rows):
            interval = " (every point measured)"
        elif half is None:
            interval = " (no interval: a predicted point has none)"
        else:
            interval = f" ± {joules_to_kwh(half):.3g} (95%)"
        grams = co2_g(total, self.intensity_g_per_kwh, self.pue)
        measured = sum(r.measured for r in self.rows)
        out.append(
            f"sweep {self.sweep_id}: ≈ {kwh:.4g} kWh{interval}, ≈ {grams:.4g} gCO2e at "
            f"{self.intensity_g_per_kwh:g} gCO2e/kWh and PUE {self.pue:g}; {measured} of "
            f"{len(self.rows)} points measured ({joules_to_kwh(self.measured_j):.4g} kWh), "
            f"{len(self.rows) - measured} predicted; the probes spent "
            f"{joules_to_kwh(self.probes_j):.3g} kWh"
        )
        return out


def _probe_point(point: Point, sweep_id: str, key: str, epochs: int) -> Point:
    cfg = dataclasses.replace(point.cfg, stop_after_epoch=min(epochs, point.cfg.epochs))
    tags = {k: v for k, v in point.run.tags.items() if k not in ("sweep", "point")}
    tags.update({PROBE_TAG: sweep_id, "point": key, "probe-epochs": str(cfg.stop_after_epoch)})
    run = dataclasses.replace(point.run, name=f"{point.run.name}-probe", tags=tags, budget=Budget())
    return Point(cfg, run)


def _probe_run(store: StoreLike, sweep_id: str, key: str, epochs: int) -> dict | None:
    """The newest finished probe of ``key`` with ``epochs`` epochs, from ``store``."""
    tags = {PROBE_TAG: sweep_id, "point": key, "probe-epochs": str(epochs)}
    with Store(store) as st:
        found = st.list_runs(status="finished", tags=tags)
        return st.get_run(found[-1]["id"]) if found else None


def _provenance(run: dict) -> str:
    """``gpu nvml:counter, cpu estimate:estimated``: which meter and method gave each domain's
    figure of ``run`` (an ``:estimated`` method is a model, not a measurement)."""
    energy = run.get("energy") if isinstance(run.get("energy"), dict) else {}
    return (
        ", ".join(
            f"{domain} {figure.get('source')}"
            for domain, figure in energy.items()
            if isinstance(figure, dict) and figure.get("energy_j") is not None
        )
        or "no energy measured"
    )


def _point_forecast(run: dict, epochs: int, prior: SiblingPrior | None = None) -> Forecast:
    """The point's forecast to ``epochs`` epochs from its own probe run (see module doc), with
    the ``prior`` of its configuration's finished siblings where there is one."""
    series = epoch_series(run, min_epochs=1)
    if series is None:
        raise ConfigError(f"run {run['id']} has no measured epoch: nothing to forecast from")
    joules, flops = series
    if len(joules) > epochs:
        joules = joules[:epochs]
    made = forecast(joules, epochs, flops if flops and len(flops) >= epochs else None, prior)
    measured = total_j(run.get("energy") or {}) or made.spent_j
    return made.shifted(max(0.0, measured - made.spent_j))


def _measured(run: dict) -> Forecast:
    """A finished point's own energy as a forecast with nothing left to come."""
    energy = total_j(run.get("energy") or {})
    if energy is None:
        raise ConfigError(f"run {run['id']} has no measured energy")
    series = epoch_series(run, min_epochs=1)
    epochs = len(series[0]) if series is not None else 0
    return Forecast(epochs, epochs, energy, energy, energy, energy, "measured")


def configuration_prior(store: StoreLike, finished: dict, epochs: int) -> SiblingPrior | None:
    """The prior of the finished siblings of ``finished`` (a finished point's run): the store's
    finished runs with its sibling key, itself included (None with fewer than two usable, or
    a store that cannot be read now)."""
    location = store.location if isinstance(store, Store) else locate(store)
    try:
        series = read_siblings(location, "", finished.get("command") or [],
                               finished.get("config") or {}, iso_utc(time.time()))  # fmt: skip
    except StoreError:
        return None
    return sibling_prior(series, epochs)


def _probe(plan_: SweepPlan, store: StoreLike, key: str, probe_epochs: int, echo: Any) -> dict:
    """The finished probe of the point ``key`` (trained now when the store has none)."""
    point = plan_.points[key]
    probe = _probe_point(point, plan_.sweep_id, key, probe_epochs)
    epochs = probe.cfg.stop_after_epoch
    run = _probe_run(store, plan_.sweep_id, key, epochs)
    if run is None:
        echo(f"sweep {plan_.sweep_id}: probing {key} for {epochs} epoch(s)")
        code = subprocess.run(train_command(probe), env=child_env(None, probe)).returncode
        run = _probe_run(store, plan_.sweep_id, key, epochs)
        if run is None:
            raise ConfigError(f"the probe of {key} failed (exit code {code})")
    return run


def forecast_sweep(
    plan_: SweepPlan,
    store: StoreLike,
    probe_epochs: int = 3,
    *,
    intensity_g_per_kwh: float,
    pue: float = 1.0,
    echo: Callable[[str], None] = print,
) -> SweepForecast:
    """Measure or predict every point of ``plan_`` (probing each unfinished point) and forecast
    the sweep's total energy (see the module docstring)."""
    if probe_epochs < 1:
        raise ConfigError(f"--probe-epochs must be >= 1, got {probe_epochs}")
    done = finished_points(plan_.sweep_id, store)
    rows, probes_j = [], 0.0
    finished: dict[str, dict] = {}  # configuration -> a finished point's run
    for key in plan_.points:
        if key in done:
            with Store(store) as st:
                run = st.get_run(done[key])
            finished.setdefault(configuration(key), run)
            rows.append(PointForecast(key, True, f"finished run {run['id']}; {_provenance(run)}",
                                      _measured(run)))  # fmt: skip
    priors: dict[str, SiblingPrior | None] = {}
    for key, point in plan_.points.items():
        if key in done:
            continue
        run = _probe(plan_, store, key, probe_epochs, echo)
        probes_j += total_j(run.get("energy") or {}) or 0.0
        seen = len((epoch_series(run, min_epochs=1) or ([],))[0])
        config = configuration(key)
        if config not in priors:
            sibling = finished.get(config)
            priors[config] = (None if sibling is None else
                              configuration_prior(store, sibling, point.cfg.epochs))  # fmt: skip
        made = _point_forecast(run, point.cfg.epochs, priors[config])
        source = f"probe run {run['id']} ({seen} of {point.cfg.epochs} epochs); {_provenance(run)}"
        if made.siblings:
            source += f"; {siblings_text(made.siblings)}"
        rows.append(PointForecast(key, False, source, made))
    order = {key: i for i, key in enumerate(plan_.points)}
    rows.sort(key=lambda r: order[r.key])
    return SweepForecast(plan_.sweep_id, rows, probes_j, intensity_g_per_kwh, pue)

"""What a whole sweep will cost, before it runs: ``greentrain sweep ... --dry-run-forecast``.

A sweep's points that differ only in their seed compute the same thing, so they cost about the
same: one *configuration*. For each configuration one run is measured and forecast to its
full length with :func:`greentrain.record.forecast.forecast` (the method the live forecast
uses: mean joules per epoch, or joules fitted to each epoch's backward FLOPs when a drop
schedule makes epochs differ):

* a finished point of the configuration, when the store has one (its measured total);
* else a *probe*: the configuration's first point trained for its first ``probe_epochs``
  epochs (``greentrain train --stop-after-epoch K``), recorded as ``<point name>-probe`` with
  the tags ``sweep-probe=<sweep id>`` and ``point=<key>`` (so it never counts as the point,
  and running the dry run again reuses it).

A point's forecast is the probe's epochs extrapolated to the run's epochs plus what the probe
spent outside its epochs (setup, evaluation). The sweep's total is the sum over points; its
95% interval treats the seeds of one configuration as one draw (their half-widths add) and
configurations as independent (half-widths add in quadrature). Joules throughout; kWh and
gCO2e (at the sweep's intensity and PUE) only for display. The total is the whole sweep's,
points already finished included (at their configuration's figure); what the probes spent is
reported beside it, not in it.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from greentrain.errors import ConfigError
from greentrain.record.forecast import Forecast, forecast
from greentrain.record.ranking import total_j
from greentrain.report.backtest import epoch_series
from greentrain.run.budget import Budget
from greentrain.run.options import StoreLike
from greentrain.store import Store
from greentrain.studies.sweep import child_env, finished_points, train_command
from greentrain.studies.sweep_plan import Point, SweepPlan
from greentrain.units import co2_g, joules_to_kwh

PROBE_TAG = "sweep-probe"


def configuration(key: str) -> str:
    """A point key without its seed: the points that compute the same thing."""
    return ",".join(part for part in key.split(",") if not part.startswith("seed="))


@dataclass(frozen=True)
class ConfigurationForecast:
    """One configuration: its ``points`` (seeds), where the figure came from, and the
    forecast total of one point (joules)."""

    configuration: str
    points: int
    source: str
    per_point: Forecast

    @property
    def total_j(self) -> float:
        return self.points * self.per_point.total_j

    @property
    def half_width_j(self) -> float | None:
        half = self.per_point.half_width_j
        return None if half is None else self.points * half


@dataclass(frozen=True)
class SweepForecast:
    """The forecast of every configuration of one sweep, and what the probes cost (joules)."""

    sweep_id: str
    rows: list[ConfigurationForecast]
    probes_j: float
    intensity_g_per_kwh: float
    pue: float

    @property
    def total_j(self) -> float:
        return math.fsum(r.total_j for r in self.rows)

    @property
    def half_width_j(self) -> float | None:
        """The 95% half-width of the total, None when any configuration has no interval."""
        halves = [r.half_width_j for r in self.rows]
        if any(h is None for h in halves):
            return None
        return math.sqrt(math.fsum(h * h for h in halves))  # type: ignore[operator]

    def lines(self) -> list[str]:
        """A table of the configurations, then the sweep's total in kWh and gCO2e."""
        out = [f"{'configuration':58s} {'points':>6s} {'kWh/point':>11s} {'± 95%':>9s}  source"]
        for r in self.rows:
            half = r.per_point.half_width_j
            half_text = "-" if half is None else f"{joules_to_kwh(half):.3g}"
            out.append(
                f"{r.configuration:58s} {r.points:6d} "
                f"{joules_to_kwh(r.per_point.total_j):11.4g} {half_text:>9s}  {r.source}"
            )
            if r.per_point.note:
                out.append(f"{'':58s} note: {r.per_point.note}")
        total, half = self.total_j, self.half_width_j
        kwh = joules_to_kwh(total)
        interval = " (no interval)" if half is None else f" ± {joules_to_kwh(half):.3g} (95%)"
        grams = co2_g(total, self.intensity_g_per_kwh, self.pue)
        out.append(
            f"sweep {self.sweep_id}: ≈ {kwh:.4g} kWh{interval}, ≈ {grams:.4g} gCO2e at "
            f"{self.intensity_g_per_kwh:g} gCO2e/kWh and PUE {self.pue:g}; the probes spent "
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


def _point_forecast(run: dict, epochs: int) -> Forecast:
    """A full point's forecast from a recorded run of its configuration (see module doc)."""
    series = epoch_series(run, min_epochs=1)
    if series is None:
        raise ConfigError(f"run {run['id']} has no measured epoch: nothing to forecast from")
    joules, flops = series
    if len(joules) > epochs:
        joules = joules[:epochs]
    made = forecast(joules, epochs, flops if flops and len(flops) >= epochs else None)
    measured = total_j(run.get("energy") or {}) or made.spent_j
    return made.shifted(max(0.0, measured - made.spent_j))


def forecast_sweep(
    plan_: SweepPlan,
    store: StoreLike,
    probe_epochs: int = 3,
    *,
    intensity_g_per_kwh: float,
    pue: float = 1.0,
    echo: Callable[[str], None] = print,
) -> SweepForecast:
    """Measure one run per configuration of ``plan_`` (probing where needed) and forecast the
    sweep's total energy (see the module docstring)."""
    if probe_epochs < 1:
        raise ConfigError(f"--probe-epochs must be >= 1, got {probe_epochs}")
    groups: dict[str, list[str]] = {}
    for key in plan_.points:
        groups.setdefault(configuration(key), []).append(key)
    done = finished_points(plan_.sweep_id, store)
    rows, probes_j = [], 0.0
    for config, keys in groups.items():
        point = plan_.points[keys[0]]
        finished = [k for k in keys if k in done]
        if finished:
            with Store(store) as st:
                run = st.get_run(done[finished[0]])
            source = f"finished run {run['id']}; {_provenance(run)}"
        else:
            probe = _probe_point(point, plan_.sweep_id, keys[0], probe_epochs)
            epochs = probe.cfg.stop_after_epoch
            run = _probe_run(store, plan_.sweep_id, keys[0], epochs)
            if run is None:
                echo(f"sweep {plan_.sweep_id}: probing {keys[0]} for {epochs} epoch(s)")
                code = subprocess.run(train_command(probe), env=child_env(None, probe)).returncode
                run = _probe_run(store, plan_.sweep_id, keys[0], epochs)
                if run is None:
                    raise ConfigError(f"the probe of {keys[0]} failed (exit code {code})")
            probes_j += total_j(run.get("energy") or {}) or 0.0
            source = (
                f"probe run {run['id']} ({epochs} of {point.cfg.epochs} epochs); {_provenance(run)}"
            )
        per_point = _point_forecast(run, point.cfg.epochs)
        rows.append(ConfigurationForecast(config, len(keys), source, per_point))
    return SweepForecast(plan_.sweep_id, rows, probes_j, intensity_g_per_kwh, pue)

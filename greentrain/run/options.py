"""How a run is metered and recorded: one options object for ``greentrain run``, ``train``,
``bench``, ``sweep`` and ``track()``.

:class:`CarbonOptions` says how energy becomes CO2e (grid intensity and PUE); :class:`RunOptions`
adds where the record goes (store, name, tags) and which meters measure. Both validate on
construction, so a bad value is a one-line :class:`~greentrain.errors.ConfigError` wherever it
came from. :meth:`RunOptions.build` takes the flat keyword names (``pue=``, ``country=``) that
the CLI flags and ``track()`` use.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain import meters as registry
from greentrain.carbon import CarbonFactors, resolve_factors
from greentrain.errors import ConfigError
from greentrain.run.budget import Budget
from greentrain.run.group import check_group_id
from greentrain.store import Store, redact

StoreLike = Store | str | os.PathLike[str] | None


def resolve_meter_names(names: Sequence[str] | None) -> list[str]:
    """Validate ``--meter`` names (ConfigError for unknown ones); None or [] -> the defaults."""
    if not names:
        return list(registry.DEFAULT_METERS)
    out: list[str] = []
    for name in names:
        registry.meter_class(name)  # raises ConfigError for an unknown name
        if name not in out:
            out.append(name)
    return out


@dataclass(frozen=True)
class CarbonOptions:
    """Grid carbon intensity and PUE for a run (see :mod:`greentrain.carbon`).

    Attributes:
        country: ISO-3166 alpha-3 code whose grid intensity to use.
        region: state/province/zone within ``country``.
        carbon_intensity: gCO2e/kWh; overrides country and region.
        pue: data-centre power usage effectiveness, >= 1.0 (1.0 = energy as metered).
    """

    country: str | None = None
    region: str | None = None
    carbon_intensity: float | None = None
    pue: float = 1.0

    def __post_init__(self) -> None:
        if self.pue is None or not 1.0 <= self.pue < math.inf:
            raise ConfigError(
                f"--pue must be a number >= 1.0 (got {self.pue}); 1.0 means no facility overhead"
            )
        if self.carbon_intensity is not None and not 0 <= self.carbon_intensity < math.inf:
            raise ConfigError(
                f"--carbon-intensity must be a number >= 0 g/kWh (got {self.carbon_intensity})"
            )

    def factors(self) -> CarbonFactors:
        """The resolved factors (ConfigError for an unknown country or region)."""
        return resolve_factors(
            country=self.country,
            region=self.region,
            carbon_intensity=self.carbon_intensity,
            pue=self.pue,
        )

    def meter_options(self) -> dict[str, dict[str, Any]]:
        """Constructor options per meter: CodeCarbon's offline country and region."""
        if not self.country:
            return {}
        opts: dict[str, Any] = {"country_iso_code": self.country}
        if self.region:
            opts["region"] = self.region
        return {"codecarbon": opts}


_CARBON_FIELDS = tuple(f.name for f in dataclasses.fields(CarbonOptions))
_BUDGET_FIELDS = ("kwh", "gco2", "forecast", "per_node")


@dataclass(frozen=True)
class RunOptions:
    """Where a run's record goes and how it is metered.

    Attributes:
        store: store path or ``postgresql://`` URL (None: ``$GREENTRAIN_STORE`` or
            ``./reports/greentrain.db``) or an open :class:`~greentrain.store.Store`.
        name: run name (None: derived from the command or the job).
        tags: KEY=VALUE labels.
        meters: meter names (None: every available default meter, never ``fake``).
        carbon: intensity and PUE.
        baseline_s: seconds of idle power to measure before the job starts (0 = none).
        grace_s: seconds a job's processes get to exit after SIGTERM (a forwarded signal, or
            leftovers when the command exits) before they are killed.
        sample_s: seconds between samples of the run's timeline (energy so far and the job's
            CPU time; 0 = none).
        group: the run group this run is one node's part of (``--group``; None: ``greentrain
            run`` finds SLURM's or torchrun's job id, see :mod:`greentrain.run.group`).
        group_size: the members the group expects (``--group-size``; None: from torchrun's
            ``--nnodes``, ``PET_NNODES`` or SLURM's tasks).
        epochs: epochs the job will run, for the forecast of its energy (None: what the job
            passes to ``client.config``; see :mod:`greentrain.run.forecasting`).
        budget: what the run may spend (:class:`~greentrain.run.budget.Budget`; none by
            default).
        prometheus_port: serve the run's energy and CO2e counters on this port
            (:mod:`greentrain.run.prometheus_export`; None: no endpoint).
        prometheus_url: a Prometheus server whose DCGM exporter series the ``prometheus``
            meter reads (:mod:`greentrain.meters.prometheus`); given, that meter joins the
            default meters.
    """

    store: StoreLike = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    meters: list[str] | None = None
    carbon: CarbonOptions = field(default_factory=CarbonOptions)
    baseline_s: float = 0.0
    grace_s: float = 10.0
    sample_s: float = 10.0
    group: str | None = None
    group_size: int | None = None
    epochs: int | None = None
    budget: Budget = field(default_factory=Budget)
    prometheus_port: int | None = None
    prometheus_url: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.baseline_s < math.inf:
            raise ConfigError(f"--baseline must be >= 0 seconds (got {self.baseline_s})")
        if not 0 < self.grace_s < math.inf:
            raise ConfigError(f"--grace must be > 0 seconds (got {self.grace_s})")
        if not 0 <= self.sample_s < math.inf:
            raise ConfigError(f"sample_s must be >= 0 seconds (got {self.sample_s})")
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in (self.tags or {}).items()})
        if self.group is not None:
            object.__setattr__(self, "group", check_group_id(str(self.group)))
        if self.group_size is not None and (
            isinstance(self.group_size, bool)
            or not isinstance(self.group_size, int)
            or self.group_size < 1
        ):
            raise ConfigError(f"--group-size must be a whole number >= 1 (got {self.group_size!r})")
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1
        ):
            raise ConfigError(f"--epochs must be a whole number >= 1 (got {self.epochs!r})")
        if self.meters:
            object.__setattr__(self, "meters", resolve_meter_names(self.meters))

    @classmethod
    def build(cls, **flat: Any) -> RunOptions:
        """From flat keywords: this class's fields plus :class:`CarbonOptions`' (``pue=``...)
        and :class:`Budget`'s as ``budget_kwh=``, ``budget_gco2=``, ``budget_forecast=``."""
        carbon = {k: flat.pop(k) for k in _CARBON_FIELDS if k in flat}
        budget = {k: flat.pop(f"budget_{k}") for k in _BUDGET_FIELDS if f"budget_{k}" in flat}
        if budget:
            flat["budget"] = dataclasses.replace(flat.get("budget") or Budget(), **budget)
        unknown = set(flat) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
        if carbon:
            flat["carbon"] = dataclasses.replace(flat.get("carbon") or CarbonOptions(), **carbon)
        return cls(**flat)

    def meter_names(self, *, with_objects: bool = False) -> list[str]:
        """Registry names to create: the given ones, else the defaults -- unless the caller
        brings ready meter objects (tests) and named none."""
        if self.meters:
            return list(self.meters)
        if with_objects:
            return []
        return resolve_meter_names(None) + (["prometheus"] if self.prometheus_url else [])

    def meter_options(self) -> dict[str, dict[str, Any]]:
        """Constructor options per meter: CodeCarbon's country, the Prometheus server's URL."""
        opts = self.carbon.meter_options()
        if self.prometheus_url:
            opts["prometheus"] = {"url": self.prometheus_url}
        return opts

    def recorded(self) -> dict[str, Any]:
        """The flat fields a job records in its run's config (the ``greentrain train`` flags);
        a store URL's password is never among them."""
        store = self.store if not isinstance(self.store, Store) else str(self.store.path)
        return {
            "store": None if store is None else redact(str(store)),
            "name": self.name,
            "tags": dict(self.tags),
            "meters": list(self.meters) if self.meters is not None else None,
            "country": self.carbon.country,
            "region": self.carbon.region,
            "carbon_intensity": self.carbon.carbon_intensity,
            "pue": self.carbon.pue,
            "budget_kwh": self.budget.kwh,
            "budget_gco2": self.budget.gco2,
            "budget_forecast": self.budget.forecast,
        }

"""The points of a sweep: a grid over model, dataset, drop, schedule and seed, expanded over
fixed ``greentrain train`` options into one metered run per point, each with a stable key and
the ``greentrain train`` flags that reproduce it. The sweep id hashes the grid and the fixed
options that change results, so re-running a sweep finds its points (:mod:`.sweep`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import ConfigError
from greentrain.jobs.config import (
    DataOptions,
    DDPMOptions,
    ExecutionOptions,
    RecipeOptions,
    SparseOptions,
    TrainConfig,
    to_cli_args,
)
from greentrain.run import RunOptions
from greentrain.run.budget import Budget

GRID_KEYS = ("model", "dataset", "drop", "schedule", "seed")
_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": str,
    "dataset": str,
    "drop": float,
    "schedule": str,
    "seed": int,
}
# Options that do not change what a point computes (left out of the sweep id).
_TRAIN_NOT_IN_ID = ("progress", "out", "resume", "stop_after_epoch")


@dataclass
class PointOutcome:
    """One grid point after a sweep: ``status`` is skipped | finished | failed | budget."""

    key: str
    status: str
    run_id: str | None = None
    detail: str = ""


@dataclass
class Point:
    """One grid point: what it trains and how it is recorded."""

    cfg: TrainConfig
    run: RunOptions


@dataclass
class SweepPlan:
    """The expanded sweep: its id and one point per key (in grid order)."""

    sweep_id: str
    points: dict[str, Point] = field(default_factory=dict)


def run_flags(run: RunOptions) -> list[str]:
    """The ``greentrain train`` metering flags that reproduce ``run``."""
    args: list[str] = []
    if run.store is not None:
        args += ["--store", str(run.store)]
    if run.name is not None:
        args += ["--name", run.name]
    for key, value in run.tags.items():
        args += ["--tag", f"{key}={value}"]
    for name in run.meters or []:
        args += ["--meter", name]
    carbon = run.carbon
    for flag, value in (
        ("--country", carbon.country),
        ("--region", carbon.region),
        ("--carbon-intensity", carbon.carbon_intensity),
    ):
        if value is not None:
            args += [flag, str(value)]
    if carbon.pue != 1.0:
        args += ["--pue", str(carbon.pue)]
    budget = run.budget
    for flag, value in (("--budget-kwh", budget.kwh), ("--budget-gco2", budget.gco2)):
        if value is not None:
            args += [flag, repr(value)]
    if budget.forecast:
        args.append("--budget-forecast")
    return args


def train_args(cfg: TrainConfig, run: RunOptions) -> list[str]:
    """The ``greentrain train`` arguments of one point, in the order of ``train --help`` (job
    options, metering, DDPM): sweep ids hash this list, so the order is part of the id."""
    job = to_cli_args(cfg, (DataOptions, RecipeOptions, SparseOptions, ExecutionOptions))
    return job + run_flags(run) + to_cli_args(cfg, (DDPMOptions,))


def parse_grid(values: Mapping[str, str | Sequence[Any] | None]) -> dict[str, list[Any]]:
    """``{"drop": "0,0.8", ...}`` -> ``{"drop": [0.0, 0.8], ...}`` (comma lists, typed)."""
    grid: dict[str, list[Any]] = {}
    for key, raw in values.items():
        if key not in GRID_KEYS:
            raise ConfigError(f"cannot sweep over {key!r}; sweepable: {', '.join(GRID_KEYS)}")
        if raw is None:
            continue
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        try:
            parsed = [_PARSERS[key](str(v).strip()) for v in items if str(v).strip()]
        except ValueError:
            raise ConfigError(f"--{key} {raw!r}: not a comma list of {key} values") from None
        if not parsed:
            raise ConfigError(f"--{key} is empty; give a comma list")
        grid[key] = list(dict.fromkeys(parsed))
    return grid


def point_key(values: Mapping[str, Any]) -> str:
    """``model=resnet18,dataset=digits,drop=0.8,...`` in GRID_KEYS order."""
    return ",".join(
        f"{k}={values[k]:g}" if k == "drop" else f"{k}={values[k]}"
        for k in GRID_KEYS
        if k in values
    )


def compute_sweep_id(
    grid: Mapping[str, list[Any]], base: TrainConfig, run: RunOptions | None = None
) -> str:
    """12 hex digits of sha1 over the grid and the fixed options that change results (the
    store, names, tags, budgets, progress and checkpoint options do not)."""
    run = run or RunOptions()
    fixed_cfg = dataclasses.replace(
        base, **{k: getattr(TrainConfig(), k) for k in _TRAIN_NOT_IN_ID}
    )
    fixed_run = dataclasses.replace(run, store=None, name=None, tags={}, budget=Budget())
    payload = json.dumps(
        {"grid": {k: grid[k] for k in sorted(grid)}, "fixed": train_args(fixed_cfg, fixed_run)},
        sort_keys=True,
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def plan(
    grid: Mapping[str, list[Any]],
    base: TrainConfig,
    run: RunOptions | None = None,
    sweep_id: str | None = None,
) -> SweepPlan:
    """Expand ``grid`` over ``base`` into one point per key (validated).

    A dense point (drop 0) does not depend on the schedule, so it is run once, as
    ``schedule=constant``, however many schedules the grid lists.
    """
    run = run or RunOptions()
    sid = sweep_id or compute_sweep_id(grid, base, run)
    keys = [k for k in GRID_KEYS if k in grid]
    out = SweepPlan(sid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        full = {k: values.get(k, getattr(base, k)) for k in GRID_KEYS}
        if float(full["drop"]) == 0.0:
            full["schedule"] = values["schedule"] = "constant"
        key = point_key(full)
        if key in out.points:
            continue
        out_dir = None
        if base.out:
            out_dir = os.path.join(base.out, sid, key.replace(",", "_").replace("=", "-"))
        cfg = dataclasses.replace(base, **values, out=out_dir)
        cfg.validate()
        point_run = dataclasses.replace(
            run, name=f"sweep-{sid}-{key}", tags={**run.tags, "sweep": sid, "point": key}
        )
        out.points[key] = Point(cfg, point_run)
    return out

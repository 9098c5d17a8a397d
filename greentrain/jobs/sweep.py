"""Grids of metered training runs that can be re-run to finish what is missing.

A sweep is a grid over ``model``, ``dataset``, ``drop``, ``schedule`` and ``seed`` plus fixed
``greentrain train`` flags. Each point is one ``greentrain train`` process (its own metered run)
tagged ``sweep=<id>`` and ``point=<key>``. The id is a hash of the grid and the fixed flags (or
``--sweep-id``), so running the same sweep again finds its points in the store: points with a
``finished`` run are skipped, all others (never run, failed, interrupted) run again.

Executors: ``local`` runs the points one after another, or ``jobs`` at a time, each process with
one GPU (``CUDA_VISIBLE_DEVICES``) when GPUs exist; ``slurm`` submits each point as a job through
submitit (``cluster="local"`` runs submitit's LocalExecutor, for tests and single machines).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from greentrain.errors import ConfigError
from greentrain.jobs.config import TrainConfig, to_cli_args, validate

GRID_KEYS = ("model", "dataset", "drop", "schedule", "seed")
_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": str,
    "dataset": str,
    "drop": float,
    "schedule": str,
    "seed": int,
}
# Flags that do not change what a point computes (left out of the sweep id).
_NOT_IN_ID = ("store", "progress", "out", "name", "tags", "resume")


@dataclass
class PointOutcome:
    """One grid point after a sweep: ``status`` is skipped | finished | failed."""

    key: str
    status: str
    run_id: str | None = None
    detail: str = ""


@dataclass
class SweepPlan:
    """The expanded sweep: its id and one TrainConfig per point key (in grid order)."""

    sweep_id: str
    points: dict[str, TrainConfig] = field(default_factory=dict)


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


def compute_sweep_id(grid: Mapping[str, list[Any]], base: TrainConfig) -> str:
    """12 hex digits of sha1 over the grid and the fixed flags that change results."""
    fixed = dataclasses.replace(base, **{k: getattr(TrainConfig(), k) for k in _NOT_IN_ID})
    payload = json.dumps(
        {"grid": {k: grid[k] for k in sorted(grid)}, "fixed": to_cli_args(fixed)}, sort_keys=True
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def plan(
    grid: Mapping[str, list[Any]], base: TrainConfig, sweep_id: str | None = None
) -> SweepPlan:
    """Expand ``grid`` over ``base`` into one config per point (validated).

    A dense point (drop 0) does not depend on the schedule, so it is run once, as
    ``schedule=constant``, however many schedules the grid lists.
    """
    sid = sweep_id or compute_sweep_id(grid, base)
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
        cfg = dataclasses.replace(
            base,
            **values,
            tags={**base.tags, "sweep": sid, "point": key},
            name=f"sweep-{sid}-{key}",
            out=os.path.join(base.out, sid, key.replace(",", "_").replace("=", "-"))
            if base.out
            else None,
        )
        validate(cfg)
        out.points[key] = cfg
    return out


def finished_points(sweep_id: str, store: str | None) -> dict[str, str]:
    """``{point key: run id}`` of the sweep's points that have a finished run in ``store``."""
    from greentrain.store import Store

    st = Store(store)
    try:
        runs = st.list_runs(status="finished", tags={"sweep": sweep_id})
    finally:
        st.close()
    return {r["tags"]["point"]: r["id"] for r in runs if "point" in r.get("tags", {})}


def _child_env(gpu: int | None) -> dict[str, str]:
    from greentrain import client

    env = dict(os.environ)
    # each point is its own metered run, even if the sweep itself runs under `greentrain run`
    for name in (client.ENV_RUN, getattr(client, "ENV_CHANNEL", "")):
        if name:
            env.pop(name, None)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def train_command(cfg: TrainConfig) -> list[str]:
    """The ``python -m greentrain train ...`` command of one point."""
    return [sys.executable, "-m", "greentrain", "train", *to_cli_args(cfg)]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # torch without CUDA support
        return 0


def run_point_cli(args: list[str]) -> int:
    """Run ``greentrain train <args>`` in this process; its exit code (submitit's job body)."""
    from greentrain.cli import main

    return main(["train", *args])


def run_sweep(
    grid: Mapping[str, list[Any]],
    base: TrainConfig,
    *,
    sweep_id: str | None = None,
    executor: str = "local",
    jobs: int = 1,
    cluster: str | None = None,
    folder: str = "runs/submitit",
    slurm_params: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[str, list[PointOutcome]]:
    """Run every unfinished point of the sweep; return (sweep id, outcome per point).

    ``executor`` "local" (``jobs`` processes at a time) or "slurm" (submitit; ``cluster`` None
    auto-detects, "local" forces submitit's LocalExecutor; ``slurm_params`` go to
    ``update_parameters``, e.g. ``timeout_min``, ``gpus_per_node``, ``slurm_partition``).
    """
    if executor not in ("local", "slurm"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or slurm")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    the_plan = plan(grid, base, sweep_id)
    sid = the_plan.sweep_id
    if jobs > 1 or executor == "slurm":  # progress bars of parallel points would interleave
        for key, cfg in the_plan.points.items():
            the_plan.points[key] = dataclasses.replace(cfg, progress=False)
    done = finished_points(sid, base.store)
    outcomes: dict[str, PointOutcome] = {}
    todo: list[str] = []
    for key in the_plan.points:
        if key in done:
            outcomes[key] = PointOutcome(key, "skipped", done[key], "finished before")
        else:
            todo.append(key)
    echo(
        f"sweep {sid}: {len(the_plan.points)} points, {len(outcomes)} finished before, "
        f"{len(todo)} to run"
    )
    codes: dict[str, int] = {}
    if todo and executor == "local":
        import queue

        n_gpu = _gpu_count()
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            slots.put(slot)

        def one(key: str) -> tuple[str, int]:
            slot = slots.get()  # a free slot; with GPUs, slot i owns GPU i % n_gpu
            try:
                gpu = slot % n_gpu if n_gpu and jobs > 1 else None
                echo(f"sweep {sid}: running {key}" + (f" on GPU {gpu}" if gpu is not None else ""))
                proc = subprocess.run(train_command(the_plan.points[key]), env=_child_env(gpu))
                return key, proc.returncode
            finally:
                slots.put(slot)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            codes = dict(pool.map(one, todo))
    elif todo:
        import submitit

        ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
        params = dict(slurm_params or {})
        if ex.cluster != "slurm":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        if params:
            ex.update_parameters(**params)
        submitted = [(k, ex.submit(run_point_cli, to_cli_args(the_plan.points[k]))) for k in todo]
        for key, job in submitted:
            try:
                codes[key] = int(job.result())
            except Exception as err:  # the job crashed before returning an exit code
                echo(f"sweep {sid}: {key} failed in submitit: {err}")
                codes[key] = 1
    after = finished_points(sid, base.store)
    for key in todo:
        ok = key in after
        outcomes[key] = PointOutcome(
            key, "finished" if ok else "failed", after.get(key), f"exit code {codes.get(key)}"
        )
    return sid, [outcomes[k] for k in the_plan.points]

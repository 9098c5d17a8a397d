"""Grids of metered training runs that can be re-run to finish what is missing.

A sweep is a grid over ``model``, ``dataset``, ``drop``, ``schedule`` and ``seed`` plus fixed
``greentrain train`` options. Each point is one metered run tagged ``sweep=<id>`` and
``point=<key>``. The id is a hash of the grid and the fixed options that change results (or
``--sweep-id``), so running the same sweep again finds its points in the store: points with a
``finished`` run are skipped, all others (never run, failed, interrupted) run again.

Executors: ``local`` runs each point as its own ``greentrain train`` process (the record keeps
that command, so a point can be re-run by hand), one after another or ``jobs`` at a time, each
with one GPU (``CUDA_VISIBLE_DEVICES``) when GPUs exist; ``slurm`` submits :func:`run_point`
through submitit (``cluster="local"`` runs submitit's LocalExecutor, for tests and single
machines).

A PostgreSQL store's password never reaches a command line: the local executor passes such a
URL in each point's environment, the slurm executor (which pickles points into submitit's
folder) refuses it. A point whose run is a group (several nodes) is one run in the store.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import subprocess
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from greentrain.errors import EXIT_BUDGET, ConfigError
from greentrain.jobs.config import TrainConfig
from greentrain.protocol import ENV_CHANNEL, ENV_RUN
from greentrain.run import RunOptions
from greentrain.store import ENV_STORE, Store, redact
from greentrain.studies.launch import launch
from greentrain.studies.sweep_budget import SweepBudget
from greentrain.studies.sweep_plan import Point, PointOutcome, SweepPlan, plan, train_args


def finished_points(sweep_id: str, store: Any) -> dict[str, str]:
    """``{point key: run id}`` of the sweep's points that have a finished run in ``store``."""
    with Store(store) as st:
        runs = st.list_runs(status="finished", tags={"sweep": sweep_id})
    return {r["tags"]["point"]: r["id"] for r in runs if "point" in r.get("tags", {})}


def _secret_store(run: RunOptions) -> str | None:
    """The store of ``run`` when it is a URL holding a password, else None."""
    store = run.store
    return store if isinstance(store, str) and redact(store) != store else None


def child_env(gpu: int | None, point: Point | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if point is not None and (secret := _secret_store(point.run)) is not None:
        env[ENV_STORE] = secret  # in the environment, not on a command line others can read
    # each point is its own metered run, even if the sweep itself runs under `greentrain run`
    for name in (ENV_RUN, ENV_CHANNEL):
        env.pop(name, None)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def train_command(point: Point) -> list[str]:
    """The ``python -m greentrain train ...`` command of one point (no password URL)."""
    secret = _secret_store(point.run) is not None  # then child_env passes the store
    run = dataclasses.replace(point.run, store=None) if secret else point.run
    return [sys.executable, "-m", "greentrain", "train", *train_args(point.cfg, run)]


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_point(point: Point) -> int:
    """Train one point in this process (submitit's job body); 0 once it is recorded."""
    launch(point.cfg, point.run)
    return 0


def _run_local(
    plan_: SweepPlan, todo: list[str], jobs: int, echo: Callable, gate: Callable | None = None
) -> dict[str, int]:
    """Each point as a ``greentrain train`` process, ``jobs`` at a time; ``gate(point)`` (a
    sweep budget) gives the point to run, or None to skip it (its code is then 124)."""
    n_gpu = _gpu_count()
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)

    def one(key: str) -> tuple[str, int]:
        slot = slots.get()  # a free slot; with GPUs, slot i owns GPU i % n_gpu
        try:
            gpu = slot % n_gpu if n_gpu and jobs > 1 else None
            point = plan_.points[key] if gate is None else gate(plan_.points[key])
            if point is None:
                return key, EXIT_BUDGET
            on_gpu = f" on GPU {gpu}" if gpu is not None else ""
            echo(f"sweep {plan_.sweep_id}: running {key}{on_gpu}")
            proc = subprocess.run(train_command(point), env=child_env(gpu, point))
            return key, proc.returncode
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(one, todo))


def _run_submitit(
    plan_: SweepPlan,
    todo: list[str],
    cluster: str | None,
    folder: str,
    slurm_params: Mapping[str, Any] | None,
    echo: Callable,
) -> dict[str, int]:
    import submitit  # optional at run time: only the slurm executor needs it

    secret = _secret_store(plan_.points[todo[0]].run) if todo else None
    if secret is not None:
        why = "the slurm executor would write it to its folder; use PGPASSWORD or ~/.pgpass"
        raise ConfigError(f"--store {redact(secret)} holds a password: {why}")
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = dict(slurm_params or {})
    if ex.cluster != "slurm":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    if params:
        ex.update_parameters(**params)
    submitted = [(k, ex.submit(run_point, plan_.points[k])) for k in todo]
    codes: dict[str, int] = {}
    for key, job in submitted:
        try:
            codes[key] = int(job.result())
        except Exception as err:  # the job crashed before returning
            echo(f"sweep {plan_.sweep_id}: {key} failed in submitit: {err}")
            codes[key] = 1
    return codes


def run_sweep(
    grid: Mapping[str, list[Any]],
    base: TrainConfig,
    run: RunOptions | None = None,
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
    ``run.budget`` is the whole sweep's (:mod:`greentrain.studies.sweep_budget`): points past
    it are not started and, like a point it stopped, have the outcome ``budget``.
    """
    if executor not in ("local", "slurm"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or slurm")
    if run is not None and run.budget.active and executor != "local":
        raise ConfigError("a sweep budget needs --executor local (slurm gets every point at once)")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    run = run or RunOptions()
    the_plan = plan(grid, base, run, sweep_id)
    sid = the_plan.sweep_id
    if jobs > 1 or executor == "slurm":  # progress bars of parallel points would interleave
        for point in the_plan.points.values():
            point.cfg = dataclasses.replace(point.cfg, progress=False)
    done = finished_points(sid, run.store)
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
        gate = SweepBudget(run, sid, echo).gate if run.budget.active else None
        codes = _run_local(the_plan, todo, jobs, echo, gate)
    elif todo:
        codes = _run_submitit(the_plan, todo, cluster, folder, slurm_params, echo)
    after = finished_points(sid, run.store)
    for key in todo:
        code = codes.get(key)
        status = "finished" if key in after else "budget" if code == EXIT_BUDGET else "failed"
        outcomes[key] = PointOutcome(key, status, after.get(key), f"exit code {code}")
    return sid, [outcomes[k] for k in the_plan.points]

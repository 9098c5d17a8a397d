"""One metered training run: ``greentrain train``, each sweep point, each demo run.

:func:`launch` joins the process group under torchrun, loads the data (before metering starts,
so a missing dataset is a one-line error and not a ``failed`` record), and on rank 0 wraps the
job in :func:`greentrain.run.track` -- which, under an outer ``greentrain run``, binds to that
run instead of metering again, so a node is metered once. Other ranks only train.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from greentrain import client
from greentrain.jobs.classify import train_classifier
from greentrain.jobs.config import TrainConfig
from greentrain.jobs.data import load_for
from greentrain.jobs.ddpm import train_ddpm
from greentrain.jobs.distributed import barrier, cleanup, setup
from greentrain.jobs.recipes import resolve
from greentrain.run import RunOptions, track


@dataclass
class LaunchResult:
    """The outcome of :func:`launch`: the stored run's id (None when not recorded) and the
    job's own result object (``ClassifyResult`` or ``DDPMResult``)."""

    run_id: str | None
    result: object


def default_run_name(cfg: TrainConfig) -> str:
    """``<model>-<dataset>-dense|ssprop<drop>-<schedule>-s<seed>`` for an unnamed run."""
    mode = "dense" if cfg.drop <= 0 else f"ssprop{cfg.drop:g}-{cfg.schedule}"
    return f"{cfg.model}-{cfg.dataset}-{mode}-s{cfg.seed}"


def launch(cfg: TrainConfig, run: RunOptions | None = None, **job_kwargs: Any) -> LaunchResult:
    """Run the job ``cfg`` describes, metered once per node as ``run`` says (None: unmetered).

    ``job_kwargs`` go to the job function (``data=`` a ready DataBundle; tests use
    ``stop_after_epoch``).
    """
    cfg = resolve(cfg)
    ctx = setup(cfg.device)
    try:
        if "data" not in job_kwargs:
            # Under DDP rank 0 downloads first; the others read its copy after the barrier.
            if ctx.is_main:
                job_kwargs["data"] = load_for(cfg)
            barrier(ctx)
            if not ctx.is_main:
                job_kwargs["data"] = load_for(cfg, download=False)
        run_cm: contextlib.AbstractContextManager = contextlib.nullcontext(None)
        if run is not None and ctx.is_main:
            run_cm = track(run.name or default_run_name(cfg), options=run)
        with run_cm as handle:
            if handle is not None:
                client.config(**run.recorded(), meter=True)
            # shown in progress bars when available: live power, the energy forecast
            power = getattr(handle, "power_w", None)
            fc = getattr(handle, "forecast_text", None)
            kwargs: dict = {
                "power_w": power if callable(power) else None,
                "forecast": fc if callable(fc) else None,
                **job_kwargs,
            }
            if cfg.model == "ddpm":
                result = train_ddpm(cfg, **kwargs)
            else:
                result = train_classifier(cfg, ctx=ctx, **kwargs)
        return LaunchResult(run_id=getattr(handle, "id", None), result=result)
    finally:
        cleanup(ctx)

"""Process-group setup for the built-in jobs: one process, or DDP under ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the job joins a process group -- NCCL
when CUDA is used, gloo on CPU -- wraps the model in DistributedDataParallel and shards the
training set with DistributedSampler. Only rank 0 logs, checkpoints, shows progress and meters
(the node is metered once: by rank 0's in-process harness, or by a wrapping ``greentrain run``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from greentrain.errors import ConfigError
from greentrain.jobs.config import TrainConfig


@dataclass
class DistContext:
    """Where this process sits: rank, world size and its torch device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``; else ``name``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def setup(device: str = "auto") -> DistContext:
    """Join the process group if launched by torchrun; return this process's context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    ctx = DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            ctx.initialized_here = True
    return ctx


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.initialized_here:
        import torch.distributed as dist

        dist.destroy_process_group()


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of a float over all ranks (identity in a single process)."""
    if not ctx.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


@dataclass
class LaunchResult:
    """The outcome of :func:`launch`: the stored run's id (None when not recorded) and the
    job's own result object (``ClassifyResult`` or the DDPM job's)."""

    run_id: str | None
    result: object


def default_run_name(cfg: TrainConfig) -> str:
    """``<model>-<dataset>-dense|ssprop<drop>-<schedule>-s<seed>`` for an unnamed run."""
    mode = "dense" if cfg.drop <= 0 else f"ssprop{cfg.drop:g}-{cfg.schedule}"
    return f"{cfg.model}-{cfg.dataset}-{mode}-s{cfg.seed}"


def launch(cfg: TrainConfig, **job_kwargs: object) -> LaunchResult:
    """Run the job ``cfg`` describes, metered once per node.

    Joins the process group under torchrun; rank 0 wraps the job in
    ``greentrain.harness.track`` (which, under ``greentrain run``, binds to the outer run instead
    of metering again); other ranks only train. Classification runs here; ``--model ddpm``
    dispatches to ``greentrain.jobs.ddpm.train_ddpm(cfg)``. ``job_kwargs`` go to the job
    function (tests use ``stop_after_epoch``).
    """
    import contextlib

    from greentrain.jobs.config import resolve

    cfg = resolve(cfg)
    ctx = setup(cfg.device)
    try:
        if "data" not in job_kwargs:
            # Load (or fail to find) the data before metering starts, so a missing dataset is
            # a one-line error, not a `failed` run in the store.
            # Under DDP rank 0 downloads first; the others read its copy after the barrier.
            from greentrain.jobs.data import load_for

            if ctx.is_main:
                job_kwargs["data"] = load_for(cfg)
            barrier(ctx)
            if not ctx.is_main:
                job_kwargs["data"] = load_for(cfg, download=False)
        run_cm: contextlib.AbstractContextManager = contextlib.nullcontext(None)
        if cfg.meter and ctx.is_main:
            from greentrain.harness import track

            run_cm = track(
                cfg.name or default_run_name(cfg),
                store=cfg.store,
                tags=dict(cfg.tags),
                meters=cfg.meters,
                country=cfg.country,
                region=cfg.region,
                carbon_intensity=cfg.carbon_intensity,
                pue=cfg.pue,
            )
        with run_cm as run:
            power = getattr(run, "power_w", None)  # shown in progress bars when available
            kwargs: dict = {"power_w": power if callable(power) else None, **job_kwargs}
            if cfg.model == "ddpm":
                from greentrain.jobs.ddpm import train_ddpm

                result = train_ddpm(cfg, **kwargs)
            else:
                from greentrain.jobs.classify import train_classifier

                result = train_classifier(cfg, ctx=ctx, **kwargs)
        return LaunchResult(run_id=getattr(run, "id", None), result=result)
    finally:
        cleanup(ctx)

"""Process-group setup for the built-in jobs: one process, or DDP under ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the job joins a process group -- NCCL
when CUDA is used, gloo on CPU -- wraps the model in DistributedDataParallel and shards the
training set with DistributedSampler. Only rank 0 logs, checkpoints, shows progress and meters
(metering is the launcher's business: :mod:`greentrain.studies.launch`). A leaf: it imports no
job module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from greentrain.errors import ConfigError


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
        if not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            ctx.initialized_here = True
    return ctx


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.initialized_here:
        dist.destroy_process_group()


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of a float over all ranks (identity in a single process)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size

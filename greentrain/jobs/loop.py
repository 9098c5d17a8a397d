"""The training loop the built-in jobs share: seeding, determinism, the drop scheduler, the
optimisation steps of one epoch and their analytic backward FLOPs.

The classification and DDPM jobs differ in their loss and evaluation only; everything here is
written once for both.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from greentrain.errors import ConfigError
from greentrain.jobs.config import SparseOptions
from ssprop import flops, schedulers


def build_drop_scheduler(
    cfg: SparseOptions, model: nn.Module, epochs: int, steps_per_epoch: int
) -> Any | None:
    """The drop scheduler driving ``model``'s sparse layers (None for the dense baseline)."""
    if cfg.drop <= 0:
        return None
    try:
        return schedulers.build(
            cfg.schedule,
            model,
            cfg.drop,
            total_steps=epochs * steps_per_epoch,
            steps_per_epoch=steps_per_epoch,
            period=cfg.period,
            period_unit=cfg.period_unit,
            warmup=cfg.warmup,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err


@dataclass
class EpochSteps:
    """What one epoch's optimisation steps did: sums over its ``steps`` iterations."""

    loss_sum: float
    rate_sum: float
    flops_sum: float
    steps: int

    def mean(self, total: float) -> float:
        return total / max(self.steps, 1)


def train_steps(
    loader: Iterable,
    steps_per_epoch: int,
    loss_fn: Callable[[Any], torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    flops_at: Callable[[float], float],
    bar: Any,
) -> EpochSteps:
    """Run at most ``steps_per_epoch`` optimisation steps over ``loader``.

    ``loss_fn(batch)`` does the forward pass and returns the loss. The drop scheduler steps after
    every optimizer step; each step's drop rate and analytic backward FLOPs (``flops_at``) are
    summed so the caller can log the epoch's means. Shared by the classification and DDPM jobs.
    """
    loss_sum = None
    rate_sum = flops_sum = 0.0
    steps = 0
    for batch in loader:
        if steps >= steps_per_epoch:
            break
        rate = scheduler.current_rate if scheduler is not None else 0.0
        loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        rate_sum += rate
        flops_sum += flops_at(rate)
        steps += 1
        if bar.enabled:
            bar.advance(loss=float(loss.detach()), drop_rate=rate)
    return EpochSteps(float(loss_sum) if loss_sum is not None else 0.0, rate_sum, flops_sum, steps)


class FlopsAt:
    """Analytic backward FLOPs per iteration at a given mean drop rate, as the paper counts
    them (Eq. 6-9: convolutions, BatchNorm, Dropout; a linear head is not counted)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        self._model_flops = flops.analyze(model, input_shape).paper()
        self._memo: dict[float, float] = {}

    def __call__(self, drop_rate: float) -> float:
        if drop_rate not in self._memo:
            if drop_rate <= 0:
                value = float(self._model_flops.dense_flops)
            else:
                value = float(self._model_flops.flops_at(drop_rate))
            self._memo[drop_rate] = value
        return self._memo[drop_rate]


def epoch_flops_plan(
    scheduler: Any, flops_at: Callable[[float], float], epochs: int, steps_per_epoch: int
) -> list[float] | None:
    """Mean analytic backward FLOPs per iteration of every epoch the drop scheduler will run
    (what each epoch's ``backward_flops_per_iter`` will be), for the run's forecast; None
    without a scheduler (every epoch alike)."""
    if scheduler is None or steps_per_epoch < 1 or epochs < 1:
        return None
    plan = []
    for e in range(epochs):
        counts = scheduler.factor_counts(total_steps=(e + 1) * steps_per_epoch,
                                         start=e * steps_per_epoch)  # fmt: skip
        plan.append(
            math.fsum(flops_at(scheduler.nominal_rate * f) * n for f, n in counts.items())
            / steps_per_epoch
        )
    return plan


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` and no cuDNN benchmark inside the block."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark = prev_bench


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def compiled(model: nn.Module, cfg: Any, device: torch.device) -> nn.Module:
    """``model`` under ``torch.compile(fullgraph=True)`` when ``cfg.compile`` or
    ``cfg.cuda_graphs`` (mode ``reduce-overhead``: CUDA graphs replay the forward and backward),
    else ``model`` itself. A graph break is an error, never a silent slow path."""
    if not (cfg.compile or cfg.cuda_graphs):
        return model
    if cfg.cuda_graphs and device.type != "cuda":
        raise ConfigError("--cuda-graphs needs a CUDA device; this job runs on " + str(device))
    mode = "reduce-overhead" if cfg.cuda_graphs else "default"
    return torch.compile(model, fullgraph=True, mode=mode)

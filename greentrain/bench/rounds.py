"""Timed rounds: every variant steps once per round, in rotated order, so drift of the
machine's load hits all variants alike; then, on a GPU, blocks of steps read on NVML's energy
counter (one step is shorter than the counter's update period). Steps are timed by
:class:`~greentrain.bench.clock.StepClock` (wall, and GPU time per phase on CUDA)."""

from __future__ import annotations

import gc
import math

from greentrain.bench import task
from greentrain.bench.clock import StepClock
from greentrain.bench.config import BenchConfig
from greentrain.bench.stats import quantiles
from greentrain.bench.variants import Log, Variant, current_rate, noop


def train_step(
    variant: Variant, batch: task.Batch, autocast, clock: StepClock | None = None
) -> None:
    """One train step (zero_grad, forward + loss, backward, optimizer step), then one scheduler
    step; ``clock`` marks its phases."""
    if clock is not None:
        clock.start()
    variant.optimizer.zero_grad(set_to_none=True)
    with autocast():
        loss = task.loss(variant.run_model, batch, variant.channels_last)
    if clock is not None:
        clock.mark()
    loss.backward()
    if clock is not None:
        clock.mark()
    variant.optimizer.step()
    if clock is not None:
        clock.stop()
    if variant.scheduler is not None:
        variant.scheduler.step()


def rotated(items: list, r: int) -> list:
    """``items`` rotated left by ``r`` places (round r starts with item r)."""
    k = r % len(items)
    return items[k:] + items[:k]


def run_rounds(
    cfg: BenchConfig, variants: list[Variant], batch, device, autocast, log: Log = noop
) -> None:
    """Warm-up rounds, then ``cfg.steps`` timed rounds; fills each variant's lists (wall
    seconds, and on CUDA the GPU seconds of each phase, :class:`StepClock`)."""
    total = cfg.warmup + cfg.steps
    for r in range(total):
        if r == cfg.warmup:
            gc.collect()
        timed = r >= cfg.warmup
        for v in rotated(variants, r):
            rate = current_rate(v)
            clock = StepClock(device)
            train_step(v, batch, autocast, clock)
            if timed:
                v.record_step(clock.wall(), clock.gpu(), rate)
        label = "warm-up" if not timed else "timed"
        log(f"round {r + 1}/{total} ({label}) done")


def energy_block_steps(cfg: BenchConfig, dense_step_s: list[float]) -> int:
    """Steps per energy block: >= ``energy_block_s`` at dense's median step time, even, >= 2."""
    median_s = quantiles(dense_step_s)["median"] if dense_step_s else 0.0
    steps = max(2, math.ceil(cfg.energy_block_s / median_s)) if median_s > 0 else 2
    return steps + steps % 2


def run_energy_blocks(
    cfg: BenchConfig, variants: list[Variant], batch, sync, autocast, counter, log: Log = noop
) -> int:
    """Joules per step of every variant from blocks of consecutive steps; returns block steps."""
    steps = energy_block_steps(cfg, variants[0].step_s)
    for r in range(cfg.energy_rounds):
        for v in rotated(variants, r):
            sync()
            e0 = counter.read_j()
            for _ in range(steps):
                train_step(v, batch, autocast)
            sync()
            v.energy_j.append((counter.read_j() - e0) / steps)
        log(f"energy round {r + 1}/{cfg.energy_rounds} ({steps} steps per block) done")
    return steps

"""Energy per training phase (``greentrain bench ssprop --phases``): forward, backward and the
optimizer step of each variant, each run alone, so backward joules saved sit next to backward
FLOPs saved -- ssProp's claim, measured.

For each steady variant (dense in both layouts and each drop rate), in rotated order, each
phase runs as a block of repetitions long enough to last ``energy_block_s`` (at least 2):

* forward: the forward pass and loss, graph built as in training, then discarded;
* backward: ``torch.autograd.grad`` of one retained loss graph into the parameters (and the
  input), repeated;
* optimizer: ``optimizer.step()`` on one set of gradients, repeated.

Seconds per repetition come from the block's wall time (synchronised) or, on CUDA, CUDA events;
joules per repetition from the NVML energy counter around the block (``None`` with the reason
off CUDA, never 0). Backward FLOPs are the analytic ones of ``ssprop.flops`` (paper Eq. 6-9).
Ratios are to dense with the same settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from greentrain.bench import task
from greentrain.bench.config import BenchConfig
from greentrain.bench.rounds import rotated
from greentrain.bench.variants import Log, Variant, noop
from ssprop import flops as ssprop_flops

PHASES = ("forward", "backward", "optimizer")


def _block(fn: Callable[[], Any], reps: int, device, counter) -> tuple[float, float | None]:
    """(seconds per repetition, joules per repetition or None) of ``reps`` calls of ``fn``."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    e0 = counter.read_j() if counter is not None else None
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if cuda:
        end.record()
        torch.cuda.synchronize(device)
    seconds = (start.elapsed_time(end) / 1e3) if cuda else time.perf_counter() - t0
    joules = (counter.read_j() - e0) / reps if counter is not None else None
    return seconds / reps, joules


def _phase_work(v: Variant, batch: task.Batch, autocast) -> dict[str, Callable[[], Any]]:
    params = [p for p in v.model.parameters() if p.requires_grad]

    def forward() -> None:
        with autocast():
            task.loss(v.run_model, batch, v.channels_last)

    with autocast():
        loss = task.loss(v.run_model, batch, v.channels_last)
    grads = torch.autograd.grad(loss, params, retain_graph=True)

    def backward() -> None:
        torch.autograd.grad(loss, params, retain_graph=True)

    for p, g in zip(params, grads, strict=True):
        p.grad = g

    def optimizer() -> None:
        v.optimizer.step()

    return {"forward": forward, "backward": backward, "optimizer": optimizer}


def _reps(fn: Callable[[], Any], device, block_s: float) -> int:
    seconds, _ = _block(fn, 1, device, None)  # one untimed pass sizes the block
    return max(2, math.ceil(block_s / seconds)) if seconds > 0 else 2


def measure_phases(
    cfg: BenchConfig, variants: list[Variant], batch, device, autocast, counter,
    energy_reason: str | None, log: Log = noop,
) -> dict:  # fmt: skip
    """The ``phases`` section of a bench result (see the module docstring)."""
    steady = [v for v in variants if v.kind != "schedule"]
    works = {v.name: _phase_work(v, batch, autocast) for v in steady}
    reps = {v.name: {p: _reps(works[v.name][p], device, cfg.energy_block_s) for p in PHASES}
            for v in steady}  # fmt: skip
    seconds: dict[str, dict[str, list[float]]] = {v.name: {p: [] for p in PHASES} for v in steady}
    joules: dict[str, dict[str, list[float]]] = {v.name: {p: [] for p in PHASES} for v in steady}
    for r in range(cfg.energy_rounds):
        for v in rotated(steady, r):
            for phase in PHASES:
                s, j = _block(works[v.name][phase], reps[v.name][phase], device, counter)
                seconds[v.name][phase].append(s)
                if j is not None:
                    joules[v.name][phase].append(j)
        log(f"phase round {r + 1}/{cfg.energy_rounds} done")
    shape = (cfg.batch_size, *cfg.input_shape)
    rows = []
    dense = steady[0].name
    for v in steady:
        diffusion = task.is_diffusion(cfg)
        analysis = None if diffusion else ssprop_flops.analyze(v.model, shape).paper()
        bwd_flops = None
        if analysis is not None:
            rate = v.drop_rate or 0.0
            bwd_flops = float(analysis.dense_flops if rate <= 0 else analysis.flops_at(rate))
        row = {"variant": v.name, "drop_rate": v.drop_rate, "backward_flops": bwd_flops}
        for phase in PHASES:
            s = _median(seconds[v.name][phase])
            j = _median(joules[v.name][phase]) if joules[v.name][phase] else None
            row[phase] = {"seconds": s, "joules": j, "repetitions": reps[v.name][phase]}
        rows.append(row)
    base = rows[0]
    for row in rows:
        for phase in PHASES:
            for unit in ("seconds", "joules"):
                ours, ref = row[phase][unit], base[phase][unit]
                row[phase][f"{unit}_ratio"] = ours / ref if ours is not None and ref else None
        ours, ref = row["backward_flops"], base["backward_flops"]
        row["backward_flops_ratio"] = ours / ref if ours is not None and ref else None
    return {"baseline": dense, "variants": rows, "joules_reason": energy_reason,
            "rounds": cfg.energy_rounds}  # fmt: skip


def _median(values: list[float]) -> float | None:
    return float(torch.tensor(values).median()) if values else None

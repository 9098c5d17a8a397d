"""Backward FLOPs per iteration of a paper model, dense vs ssProp under a drop schedule.

Analytic figures follow the paper (Eq. 6 convolution, Eq. 7 BatchNorm, Eq. 8 Dropout, Eq. 9
sparse convolution with the selection's summation; see ``ssprop.flop_counts``); every Conv2d is
made sparse (``ssprop.convert``), the classifier head stays dense. ``convention="paper"`` (the
default) counts what the paper counts -- convolutions, BatchNorm, Dropout -- and reproduces its
tables; the head's backward is reported beside it (``head_flops_per_iter``). The opt-in
variants ``reselect_every`` and ``min_channels`` (``ssprop.settings``) are counted as the
training jobs count them.
``convention="all"`` adds the head (and any other linear layer) into every figure. The model
is built on the meta device, so even ResNet-50 at 224x224 is instant and allocates nothing.

- ``dense_flops_per_iter``: every layer dense.
- ``sparse_flops_per_iter``: the mean over the schedule's iterations (``epochs`` x
  ``steps_per_epoch``), each iteration at the drop rate the schedule gives it.
- :func:`executed_report` runs one real forward/backward on the CPU under
  ``torch.utils.flop_counter.FlopCounterMode`` with all convolutions dense and then at the drop
  rate: what the kernels really did (2 FLOPs per MAC of every GEMM, no BatchNorm or bias sums;
  the first convolution's grad_input is not computed). It runs on ``min(B, 2)`` samples and
  scales by ``B / b`` (every counted FLOP is linear in the batch size).
"""

from __future__ import annotations

import torch

from greentrain.errors import ConfigError
from greentrain.jobs.config import PERIOD_UNITS, SCHEDULES, validate_variant_options
from greentrain.jobs.models import build_model
from greentrain.jobs.recipes import BAR_PERIOD_EPOCHS
from ssprop import flops as F
from ssprop import schedulers
from ssprop.convert import convert, sparse_modules

CONVENTIONS = ("paper", "all")


def flops_report(
    *,
    model: str,
    stem: str,
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    drop: float,
    schedule: str,
    period: int | None,
    period_unit: str,
    epochs: int,
    steps_per_epoch: int | None,
    warmup: int,
    executed: bool,
    convention: str = "paper",
    reselect_every: int = 1,
    min_channels: int = 0,
) -> dict:
    """The ``greentrain flops --json`` object (FLOPs per iteration; see the module docstring).

    Raises ConfigError for bad values.
    """
    validate_variant_options(None, reselect_every, min_channels)
    if convention not in CONVENTIONS:
        raise ConfigError(f"--convention must be paper or all, got {convention!r}")
    if period_unit not in PERIOD_UNITS:
        raise ConfigError(f"--period-unit must be 'epoch' or 'iter', got {period_unit!r}")
    if not 0.0 <= drop < 1.0:
        raise ConfigError(f"--drop must be in [0, 1) (0 = dense), got {drop}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown --schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if period_unit == "iter" and steps_per_epoch is None:
        raise ConfigError(
            "--period-unit iter needs --steps-per-epoch (batches per epoch, e.g. 391 for "
            "CIFAR-10 at batch 128)"
        )
    spe = 1 if steps_per_epoch is None else steps_per_epoch
    if spe < 1:
        raise ConfigError(f"--steps-per-epoch must be >= 1, got {spe}")
    if period is None and schedule == "bar":
        period = BAR_PERIOD_EPOCHS if period_unit == "epoch" else None
    batch, channels, height, width = input_shape

    with torch.device("meta"):
        net = build_model(model, num_classes=num_classes, in_channels=channels, stem=stem)
    convert(net, drop_rate=drop, reselect_every=reselect_every, min_channels=min_channels)
    try:
        sched = schedulers.build(
            schedule,
            None,
            drop,
            total_steps=epochs * spe,
            steps_per_epoch=spe,
            period=period,
            period_unit=period_unit,
            warmup=warmup,
        )
        every = F.analyze(net, input_shape)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    mf = every.paper() if convention == "paper" else every
    head = every.dense_flops - every.paper().dense_flops  # linear layers, always dense
    dense = mf.dense_flops
    sparse_mean = F.schedule_mean_flops(mf, sched)
    layer_means = F.schedule_layer_flops(every, sched)
    iterations = epochs * spe
    layers = []
    for row, mean in zip(every.layers, layer_means, strict=True):
        item = row.to_dict()
        item["counted"] = convention == "all" or row.kind in F.PAPER_KINDS
        item["flops_at_drop"] = row.flops_at(drop if row.sparse else 0.0)
        item["sparse_flops_per_iter"] = mean
        layers.append(item)
    report = {
        "model": model,
        "stem": stem,
        "input": list(input_shape),
        "num_classes": num_classes,
        "drop_rate": drop,
        "schedule": schedule,
        "period": period,
        "period_unit": period_unit,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "warmup": warmup,
        "convention": convention,
        "dense_flops_per_iter": dense,
        "head_flops_per_iter": head,
        "sparse_flops_per_iter": sparse_mean,
        "flops_at_drop_per_iter": mf.flops_at(drop),
        "mean_drop_rate": sched.mean_rate(),
        "saving_fraction": 1.0 - sparse_mean / dense if dense else None,
        "total_dense_flops": dense * iterations if steps_per_epoch is not None else None,
        "total_sparse_flops": sparse_mean * iterations if steps_per_epoch is not None else None,
        "reselect_every": reselect_every,
        "min_channels": min_channels,
        "by_kind": every.by_kind(),
        "layers": layers,
        "executed": None,
        "method": "analytic backward FLOPs, ssProp paper Eq. 6-9 (1 FLOP per add/mul); "
        + (
            "convolutions, BatchNorm and Dropout, as the paper counts (head apart)"
            if convention == "paper"
            else "every counted layer, the linear head included"
        ),
    }
    if executed:
        report["executed"] = executed_report(
            model, stem, num_classes, (batch, channels, height, width), drop
        )
    return report


def executed_report(
    model: str, stem: str, num_classes: int, input_shape: tuple[int, int, int, int], drop: float
) -> dict:
    """FlopCounterMode backward FLOPs of one real iteration, dense and at ``drop``."""
    batch, channels, height, width = input_shape
    measured = min(batch, 2)
    torch.manual_seed(0)
    net = build_model(model, num_classes=num_classes, in_channels=channels, stem=stem)
    convert(net, drop_rate=drop)
    net.train()
    x = torch.randn(measured, channels, height, width)
    counts = {}
    for label, rate in (("dense", 0.0), ("sparse", drop)):
        for _, layer in sparse_modules(net):
            layer.drop_rate = rate
        counts[label] = F.executed_backward_flops(net, x) * batch // measured
        net.zero_grad(set_to_none=True)
    return {
        "dense_backward_flops": counts["dense"],
        "sparse_backward_flops": counts["sparse"],
        "drop_rate": drop,
        "measured_batch": measured,
        "scaled_to_batch": batch,
        "method": "torch.utils.flop_counter.FlopCounterMode, one CPU backward, 2 FLOPs/MAC",
    }

"""Backward FLOPs of a model's training iteration, as the ssProp paper counts them.

The formulas, one layer's row (:class:`LayerFlops`) and a model's rows (:class:`ModelFlops`)
are in :mod:`ssprop.flop_counts`, documented there and re-exported here. This module finds the
rows of a real model (:func:`analyze`, forward hooks on the meta device or any other), averages
them over a drop schedule (:func:`schedule_mean_flops`, :func:`schedule_layer_flops`), and
counts what autograd really executes (:func:`executed_backward_flops`, FlopCounterMode).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ssprop.flop_counts import (
    PAPER_KINDS,
    LayerFlops,
    ModelFlops,
    batchnorm_backward_flops,
    check_shape,
    conv_backward_flops,
    conv_gemm_terms,
    dropout_backward_flops,
    linear_backward_flops,
    sparse_conv_backward_flops,
)

__all__ = [
    "PAPER_KINDS",
    "conv_backward_flops",
    "sparse_conv_backward_flops",
    "linear_backward_flops",
    "batchnorm_backward_flops",
    "dropout_backward_flops",
    "LayerFlops",
    "ModelFlops",
    "analyze",
    "schedule_mean_flops",
    "schedule_layer_flops",
    "executed_backward_flops",
]


def _variant(mod: nn.Module, sparse: bool) -> tuple[bool, float | None, int]:
    """``(runs sparse, target_drop_rate, reselect_every)`` of a layer (ssprop.settings)."""
    if not sparse or getattr(mod, "_always_dense", False):
        return False, None, 1
    return True, float(mod.target_drop_rate), int(getattr(mod, "reselect_every", 1))


def _conv_row(
    name: str, mod: nn.Module, x: torch.Tensor, y: torch.Tensor, sparse: bool
) -> LayerFlops:
    bias = mod.bias is not None
    if mod.transposed:
        # grads of a transposed conv are GEMMs over the *input* positions with C_in columns
        m, n = conv_gemm_terms(
            x.shape[0], x.shape[2:], mod.out_channels, mod.in_channels, mod.kernel_size, mod.groups
        )
        gemm = 4 * m * n * mod.in_channels
        bias_f = x.shape[0] * math.prod(y.shape[2:]) * mod.out_channels if bias else 0
        sel = (x.shape[0] * math.prod(y.shape[2:]) - 1) * mod.out_channels
        kind = "conv_transpose"
    else:
        m, n = conv_gemm_terms(
            x.shape[0], y.shape[2:], mod.in_channels, mod.out_channels, mod.kernel_size, mod.groups
        )
        gemm = 4 * m * n * mod.out_channels
        bias_f = m * mod.out_channels if bias else 0
        sel = (m - 1) * mod.out_channels
        kind = "conv"
    runs_sparse, target, every = _variant(mod, sparse)
    return LayerFlops(
        name,
        kind,
        tuple(x.shape),
        tuple(y.shape),
        gemm + bias_f,
        gemm,
        bias_f,
        sel,
        runs_sparse,
        target,
        every,
    )


def _linear_row(
    name: str, mod: nn.Linear, x: torch.Tensor, y: torch.Tensor, sparse: bool
) -> LayerFlops:
    rows = math.prod(x.shape[:-1])
    gemm = 4 * rows * mod.in_features * mod.out_features
    bias_f = rows * mod.out_features if mod.bias is not None else 0
    runs_sparse, target, every = _variant(mod, sparse)
    return LayerFlops(
        name,
        "linear",
        tuple(x.shape),
        tuple(y.shape),
        gemm + bias_f,
        gemm,
        bias_f,
        (rows - 1) * mod.out_features,
        runs_sparse,
        target,
        every,
    )


def _row_for(name: str, mod: nn.Module, x: Any, y: Any, sparse_ids: set[int]) -> LayerFlops | None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        return None
    sparse = id(mod) in sparse_ids
    if isinstance(mod, nn.modules.conv._ConvNd):
        return _conv_row(name, mod, x, y, sparse)
    if isinstance(mod, nn.Linear):
        return _linear_row(name, mod, x, y, sparse)
    if isinstance(mod, nn.modules.batchnorm._NormBase) and not isinstance(
        mod, nn.modules.instancenorm._InstanceNorm
    ):
        return LayerFlops(
            name, "batchnorm", tuple(x.shape), tuple(y.shape), batchnorm_backward_flops(x.shape)
        )
    if isinstance(mod, nn.modules.dropout._DropoutNd):
        return LayerFlops(
            name, "dropout", tuple(x.shape), tuple(y.shape), dropout_backward_flops(x.shape)
        )
    return None


def _sparse_ids(model: nn.Module) -> set[int]:
    try:
        from ssprop.convert import sparse_modules
    except ImportError:  # ssprop.convert not importable: nothing is sparse
        return set()
    return {id(m) for _, m in sparse_modules(model)}


def analyze(
    model: nn.Module, input_shape: Iterable[int], *, device: str | None = "meta"
) -> ModelFlops:
    """Walk ``model`` on a dummy input of ``input_shape`` and count its backward FLOPs.

    Shapes come from forward hooks on a copy of the model moved to ``device`` ("meta" by
    default: no memory, no compute, instant even for ResNet-50 at 224x224); the model is not
    modified. ``device=None`` runs the model itself where it is, under ``no_grad`` (BatchNorm
    running statistics of a model in train mode do move). A layer called several
    times in one forward (weight sharing) gets one row per call (``name#2``, ...).
    """
    shape = check_shape("input_shape", input_shape, 2)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    if device is None:
        work = model
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
    else:
        work = copy.deepcopy(model).to(device)
        dev = torch.device(device)
    sparse_ids = _sparse_ids(work)
    rows: list[LayerFlops] = []
    seen: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def fn(mod: nn.Module, args: tuple, out: Any) -> None:
            row = _row_for(name, mod, args[0] if args else None, out, sparse_ids)
            if row is None:
                return
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                row = replace(row, name=f"{name}#{seen[name]}")
            rows.append(row)

        return fn

    for name, mod in work.named_modules():
        handles.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            try:
                work(torch.zeros(shape, device=dev))
            except (RuntimeError, ValueError, IndexError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ValueError(f"input_shape {shape} does not fit the model: {first}") from err
    finally:
        for h in handles:
            h.remove()
    return ModelFlops(shape, rows)


def schedule_mean_flops(
    model_flops: ModelFlops, scheduler_or_rates: Any, total_steps: int | None = None
) -> float:
    """Mean backward FLOPs per iteration over a schedule.

    ``scheduler_or_rates`` is an ``ssprop.schedulers.DropScheduler`` (its iterations
    ``[0, total_steps)``, default the scheduler's run; each layer at the rate the scheduler
    would give it) or an iterable of per-iteration nominal drop rates applied to every
    sparse layer.
    """
    if hasattr(scheduler_or_rates, "factor_counts"):
        sched = scheduler_or_rates
        counts = sched.factor_counts(total_steps)
        total = sum(n * model_flops.flops_at_factor(f, sched.drop_rate) for f, n in counts.items())
        return total / sum(counts.values())
    rates = list(scheduler_or_rates)
    if total_steps is not None:
        rates = rates[:total_steps]
    if not rates:
        raise ValueError("schedule_mean_flops needs at least one iteration")
    cache: dict[float, float] = {}
    for r in rates:
        if r not in cache:
            cache[r] = model_flops.flops_at(r)
    return sum(cache[r] for r in rates) / len(rates)


def schedule_layer_flops(
    model_flops: ModelFlops, scheduler: Any, total_steps: int | None = None
) -> list[float]:
    """Per-layer mean backward FLOPs per iteration over a scheduler's iterations, in the
    order of ``model_flops.layers`` (they sum to ``schedule_mean_flops``)."""
    counts = scheduler.factor_counts(total_steps)
    n = sum(counts.values())
    out = []
    for row in model_flops.layers:
        total = sum(
            k * row.flops_at(row.scheduled_rate(f, scheduler.drop_rate)) for f, k in counts.items()
        )
        out.append(total / n)
    return out


def executed_backward_flops(model: nn.Module, example_input: torch.Tensor) -> int:
    """FLOPs autograd really executes in one backward of ``model(example_input).sum()``.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward, minus the
    forward's count). Its convention: 2 FLOPs per MAC of every GEMM/convolution (each of
    ``convolution_backward``'s grad_input and grad_weight GEMMs is ``2*M*N*C_out``), nothing
    for element-wise ops, BatchNorm or bias sums. So for a bias-free convolution whose input
    needs grad it equals Eq. 6 (``4*M*N*C_out``); the first convolution of a network gets only
    its grad_weight half (``2*M*N*C_out``) because the data does not require grad.
    Caveat: torch's formula (at least up to 2.14) counts the grad_weight of a *grouped*
    convolution ``groups`` times too high (no group division; pytorch/pytorch#183405).
    The model runs for real (one forward and backward; its gradients are accumulated).
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(example_input, torch.Tensor):
        raise ValueError("example_input must be a tensor")
    with FlopCounterMode(display=False) as counter:
        out = model(example_input)
        forward = counter.get_total_flops()
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise ValueError("the model output must be a tensor that requires grad")
        out.sum().backward()
        total = counter.get_total_flops()
    return int(total - forward)

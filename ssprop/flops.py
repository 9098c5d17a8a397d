"""Backward FLOPs of a training iteration, as the ssProp paper counts them (Eq. 6-10).

Every addition, subtraction, multiplication or division counts as one FLOP (paper, "Drop Rate
Lower Bound"); a multiply-accumulate (MAC) is therefore 2 FLOPs.

Convolution (Eq. 6). In the img2col form a convolution is the GEMM
``col_Y (M x C_out) = col_X (M x N) @ col_W (N x C_out)`` with ``M = Bt * H_out * W_out`` and
``N = (C_in / groups) * K_h * K_w`` (C_in per group: a grouped convolution is ``groups``
GEMMs of ``C_out / groups`` columns each, which sums to the same ``M * N * C_out`` MACs).
Its backward is two GEMMs of the same size plus the bias gradient::

    grad_X = grad_Y @ col_W^T     M * N * C_out MACs = 2*M*N*C_out FLOPs
    grad_W = col_X^T @ grad_Y     M * N * C_out MACs = 2*M*N*C_out FLOPs
    grad_b = sum_M grad_Y         M * C_out FLOPs (the paper counts M additions per channel)

    dense = M * (4*N + 1) * C_out        (Eq. 6; the "+1" only when the conv has a bias)

The paper counts grad_X for every convolution, the first one included, although autograd does
not compute it when the network input does not require grad; ``executed_backward_flops`` shows
what autograd really ran. Transposed convolutions are the same GEMMs with the roles swapped:
``M = Bt * prod(input spatial)``, ``N = (C_out / groups) * prod(K)`` and ``C_in`` columns (the
bias term stays ``Bt * prod(output spatial) * C_out``).

Sparse convolution (Eq. 9). With nominal drop rate D only the kept output channels enter both
GEMMs and the bias sum, and ranking the channels costs the summation of |grad_Y| over
``M`` for every channel, ``(M - 1) * C_out`` additions (sorting only compares)::

    sparse(D) = (4*M*N*C_out + bias) * (1 - D) + (M - 1) * C_out        for D > 0
    sparse(0) = dense                                                  (native path)

D is the nominal rate: the implementation keeps ``max(1, floor((1 - D) * C_out))`` channels,
so the executed count can be slightly lower (``executed_backward_flops``).

The opt-in variants of ``ssprop.settings`` change the count, and ``analyze`` reads them from
each layer: with ``reselect_every=N`` the channels are ranked on one backward in N (the others
reuse the cached indices), so the selection term is amortised to ``(M - 1) * C_out / N`` per
iteration (nominal: the first sparse backward after a dense phase ranks afresh, so a run may
rank up to once more per sparse phase); a layer with fewer output channels than its
``min_channels`` runs dense and is counted dense (``LayerFlops.sparse`` is False).

Linear layers are the same with ``M`` = number of rows (the product of all but the last input
dimension), ``N = in_features``, ``C_out = out_features``. The paper only counts convolution,
BatchNorm and Dropout; we add linear layers (a classifier head is < 0.1 % of a ResNet's total)
because their backward is real work; ``ModelFlops.by_kind`` separates them.

BatchNorm (Eq. 7), on the layer's input ``(Bt, C, *spatial)``: ``12 * numel + 10 * C``.
Dropout (Eq. 8), any ``nn.Dropout*``: ``2 * numel``. Other layers (activations, pooling,
GroupNorm/LayerNorm, additions) are not counted, as in the paper.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

__all__ = [
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


# -- pure shape formulas ---------------------------------------------------------------------
def _check_shape(name: str, shape: Iterable[int], min_dims: int) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if len(out) < min_dims or any(s < 1 for s in out):
        raise ValueError(f"{name} must have >= {min_dims} positive dims, got {tuple(shape)}")
    return out


def _check_drop(drop_rate: float) -> float:
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    return float(drop_rate)


def _check_every(reselect_every: int) -> int:
    if (
        isinstance(reselect_every, bool)
        or not isinstance(reselect_every, int)
        or reselect_every < 1
    ):
        raise ValueError(f"reselect_every must be an integer >= 1, got {reselect_every!r}")
    return reselect_every


def conv_gemm_terms(
    batch: int,
    out_spatial: Iterable[int],
    in_channels: int,
    out_channels: int,
    kernel_size: Iterable[int],
    groups: int = 1,
) -> tuple[int, int]:
    """``(M, N)`` of a convolution's img2col GEMM: ``M = Bt*prod(out spatial)``,
    ``N = (C_in/groups)*prod(K)``."""
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels ({in_channels}, {out_channels}) not divisible by {groups=}")
    m = batch * math.prod(out_spatial)
    n = (in_channels // groups) * math.prod(kernel_size)
    return m, n


def conv_backward_flops(m: int, n: int, c_out: int, bias: bool) -> int:
    """Eq. 6: ``M * (4N + 1) * C_out`` (the ``+1`` bias term only with a bias)."""
    return 4 * m * n * c_out + (m * c_out if bias else 0)


def sparse_conv_backward_flops(
    m: int, n: int, c_out: int, bias: bool, drop_rate: float, reselect_every: int = 1
) -> float:
    """Eq. 9 right-hand side with the paper's ``(M - 1) * C_out`` selection sum (amortised over
    ``reselect_every`` iterations); dense at 0."""
    d = _check_drop(drop_rate)
    dense = conv_backward_flops(m, n, c_out, bias)
    if d == 0.0:
        return float(dense)
    return dense * (1.0 - d) + (m - 1) * c_out / _check_every(reselect_every)


def linear_backward_flops(rows: int, in_features: int, out_features: int, bias: bool) -> int:
    """Linear analogue of Eq. 6: ``rows * (4 * in + 1) * out`` (``+1`` only with a bias)."""
    return conv_backward_flops(rows, in_features, out_features, bias)


def batchnorm_backward_flops(input_shape: Iterable[int]) -> int:
    """Eq. 7 on the input ``(Bt, C, *spatial)``: ``12 * Bt*H*W*C + 10 * C``."""
    shape = _check_shape("batchnorm input", input_shape, 2)
    return 12 * math.prod(shape) + 10 * shape[1]


def dropout_backward_flops(input_shape: Iterable[int]) -> int:
    """Eq. 8 on the input: ``2 * Bt*H*W*C`` (multiply by the mask and the 1/(1-p) scale)."""
    return 2 * math.prod(_check_shape("dropout input", input_shape, 1))


# -- per-layer rows --------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerFlops:
    """One counted layer of a model at a given input shape (FLOPs per iteration).

    ``gemm_flops`` (4*M*N*C_out), ``bias_flops`` (M*C_out or 0) and ``selection_flops``
    ((M-1)*C_out, one ranking) are filled for convolutions and linear layers; ``dense_flops``
    is the layer's Eq. 6/7/8 figure. ``sparse`` is True for ssprop sparse layers that run
    sparse (False for one kept dense by ``min_channels``); ``target_drop_rate`` is the rate
    ``convert`` configured and ``reselect_every`` the number of iterations one ranking serves.
    """

    name: str
    kind: str  # "conv", "conv_transpose", "linear", "batchnorm", "dropout"
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dense_flops: int
    gemm_flops: int = 0
    bias_flops: int = 0
    selection_flops: int = 0
    sparse: bool = False
    target_drop_rate: float | None = None
    reselect_every: int = 1

    def flops_at(self, drop_rate: float) -> float:
        """Backward FLOPs of this layer when it runs at ``drop_rate`` (ignored if not sparse);
        the selection sum is amortised over ``reselect_every`` iterations."""
        d = _check_drop(drop_rate)
        if not self.sparse or d == 0.0:
            return float(self.dense_flops)
        gemm = (self.gemm_flops + self.bias_flops) * (1.0 - d)
        return gemm + self.selection_flops / self.reselect_every

    def scheduled_rate(self, factor: float, drop_rate: float | None = None) -> float:
        """The rate a scheduler at ``factor`` gives this layer (``ssprop.schedulers`` rule):
        ``(drop_rate or target_drop_rate) * factor``; 0 for dense or 0-target layers."""
        if not self.sparse or not self.target_drop_rate:
            return 0.0
        return (self.target_drop_rate if drop_rate is None else drop_rate) * factor

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["input_shape"] = list(self.input_shape)
        row["output_shape"] = list(self.output_shape)
        return row


@dataclass
class ModelFlops:
    """Analytic backward FLOPs per iteration of a model at ``input_shape``."""

    input_shape: tuple[int, ...]
    layers: list[LayerFlops] = field(default_factory=list)

    @property
    def dense_flops(self) -> int:
        """Backward FLOPs per iteration with every layer dense (Eq. 6-8 summed)."""
        return sum(row.dense_flops for row in self.layers)

    @property
    def sparse_layers(self) -> list[LayerFlops]:
        return [row for row in self.layers if row.sparse]

    def by_kind(self) -> dict[str, int]:
        """Dense FLOPs summed per layer kind."""
        out: dict[str, int] = {}
        for row in self.layers:
            out[row.kind] = out.get(row.kind, 0) + row.dense_flops
        return out

    def flops_at(self, drop_rate: float) -> float:
        """Backward FLOPs per iteration when every sparse layer runs at ``drop_rate``.

        Sparse layers whose ``target_drop_rate`` is 0 (kept dense on purpose) stay dense.
        """
        d = _check_drop(drop_rate)
        return sum(
            row.flops_at(d if row.sparse and row.target_drop_rate != 0.0 else 0.0)
            for row in self.layers
        )

    def flops_with_rates(self, rates: Mapping[str, float]) -> float:
        """Backward FLOPs with per-layer rates ``{layer name: drop rate}``; others dense."""
        return sum(row.flops_at(rates.get(row.name, 0.0)) for row in self.layers)

    def flops_at_factor(self, factor: float, drop_rate: float | None = None) -> float:
        """FLOPs when a scheduler applies ``factor``: layer rate = (drop_rate or the layer's
        target) * factor, 0-target layers dense (the rule of ``ssprop.schedulers``)."""
        return sum(row.flops_at(row.scheduled_rate(factor, drop_rate)) for row in self.layers)


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
    shape = _check_shape("input_shape", input_shape, 2)
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

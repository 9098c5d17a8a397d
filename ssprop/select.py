"""Gradient importance and selection for ssProp (paper Fig. 1a).

The importance of an output channel is the mean absolute value of its gradient over every other
dimension (batch, height, width), accumulated in float32 whatever the gradient's dtype. The kept
count is ``K = max(1, floor((1 - drop_rate) * n))`` — the paper's reference code floors; a
``1e-9`` guard keeps ``(1 - 0.8) * 10`` at 2 instead of 1.9999… -> 1.

Selection never sorts: ``torch.topk(sorted=False)`` for ``"topk"``, a random permutation for
``"random"``. Only the *set* of kept indices matters downstream.

``dims`` modes (the paper's sensitivity study): ``"channel"`` ranks output channels (the only
mode that saves compute: the backward runs on the kept channels only); ``"spatial"`` ranks the
(H, W) positions by mean |grad| over batch and channels; ``"all"`` ranks every (C, H, W) element
by its mean |grad| over the batch. ``"spatial"`` and ``"all"`` only *mask* the gradient (the
dropped entries become zero) and then run the dense backward: they save no compute.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SELECTIONS = ("topk", "random")
DIMS = ("channel", "spatial", "all")


def validate_drop_rate(drop_rate: float) -> float:
    """Return ``drop_rate`` as a float, or raise ValueError if it is outside [0, 1)."""
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)):
        raise ValueError(
            f"drop_rate must be a number in [0, 1), got {drop_rate!r}; pass e.g. drop_rate=0.8"
        )
    rate = float(drop_rate)
    if not (0.0 <= rate < 1.0) or math.isnan(rate):
        raise ValueError(
            f"drop_rate must be in [0, 1), got {rate}; pass e.g. drop_rate=0.8 "
            "(1.0 would drop every gradient)"
        )
    return rate


def validate_selection(selection: str) -> str:
    """Return ``selection`` or raise ValueError naming the valid choices."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    return selection


def validate_dims(dims: str) -> str:
    """Return ``dims`` or raise ValueError naming the valid choices."""
    if dims not in DIMS:
        raise ValueError(f"dims must be one of {', '.join(DIMS)}; got {dims!r}")
    return dims


def num_kept(n: int, drop_rate: float) -> int:
    """Number of entries kept out of ``n``: ``max(1, floor((1 - drop_rate) * n))``."""
    return max(1, min(n, int(math.floor((1.0 - drop_rate) * n + 1e-9))))


def importance(grad: Tensor, keep_dims: tuple[int, ...]) -> Tensor:
    """Mean |grad| over every dim not in ``keep_dims`` (float32; float64 for float64 grads).

    One fused pass: ``torch.linalg.vector_norm(ord=1)`` with float32 accumulation.
    """
    keep = {d % grad.dim() for d in keep_dims}
    reduce = tuple(d for d in range(grad.dim()) if d not in keep)
    count = 1
    for d in reduce:
        count *= grad.shape[d]
    if not reduce:
        return grad.abs().to(torch.float64 if grad.dtype == torch.float64 else torch.float32)
    acc = torch.float64 if grad.dtype == torch.float64 else torch.float32
    total = torch.linalg.vector_norm(grad, ord=1, dim=reduce, dtype=acc)
    return total / max(count, 1)


def channel_importance(grad: Tensor, dim: int = 1) -> Tensor:
    """Importance of each channel along ``dim`` (shape ``[C]``, float32): mean |grad|."""
    total, count = channel_abs_sum(grad, dim)
    return total / count


def channel_abs_sum(grad: Tensor, dim: int = 1) -> tuple[Tensor, int]:
    """``(sum |grad| per channel along dim, number of summed elements per channel)``.

    The ranking the backward uses (same order as the mean, one division fewer).

    channels_last tensors are summed as ``[N, H*W, C]``: over H*W first, then over N. On the
    CPU, contiguous NCHW-like tensors are summed as ``[N, C, rest]``; on a GPU every other
    layout takes one fused reduction; other CPU layouts use ``importance``. The accumulation is
    float32 (float64 for float64 gradients) everywhere.

    * CPU: ``abs`` then a float32-accumulating ``sum``. Deliberately one ``abs`` and two
      ``sum`` calls, not a chunked loop: chunking saves a full-size temporary but multiplies
      the parallel regions, and on a shared 2-core CPU each region can wait a scheduler time
      slice for its second thread (measured up to 8x slower).
    * GPU: ``vector_norm(ord=1)``, which takes abs, upcast and sum in registers; the extra
      passes and launches of the CPU form cost more than the sum itself there. For
      channels_last, the two-step sum took 360 us where one reduction over (N, H, W) took
      576 us (ResNet-50's grad_output shapes at batch 64, bf16, H100).
    """
    acc = torch.float64 if grad.dtype == torch.float64 else torch.float32
    dim = dim % grad.dim()
    count = max(grad.numel() // max(grad.shape[dim], 1), 1)
    on_cpu = grad.device.type == "cpu"
    if dim == 1 and grad.dim() == 4 and _channels_last_only(grad):
        n, c = grad.shape[0], grad.shape[1]
        rows = grad.permute(0, 2, 3, 1).reshape(n, -1, c)  # [N, H*W, C], a view
        if on_cpu:
            per_image = rows.abs().sum(1, dtype=acc)
        else:
            per_image = torch.linalg.vector_norm(rows, 1, dim=1, dtype=acc)
        return per_image.sum(0), count
    if not on_cpu:
        reduce = tuple(d for d in range(grad.dim()) if d != dim)
        return torch.linalg.vector_norm(grad, 1, dim=reduce, dtype=acc), count
    if dim == 1 and grad.dim() >= 2 and grad.is_contiguous():
        n, c = grad.shape[0], grad.shape[1]
        return grad.reshape(n, c, -1).abs().sum(2, dtype=acc).sum(0), count
    return importance(grad, (dim,)) * count, count


# Tensor cores take matrix dimensions in multiples of 8 (16-bit types): an odd kept-channel
# count sends cuDNN to slower kernels. Measured on an H100 (ResNet-50 convs at 224x224, batch 64,
# bf16, channels_last): the shrunk conv backward summed over the layers took 1.06x the dense
# backward with K = floor(0.2 C) and 0.87x with K padded to a multiple of 8.
TENSOR_CORE_MULTIPLE = 8


def tensor_core_padding(grad: Tensor, k: int, n: int) -> int:
    """Zero channels to append to ``k`` kept channels (of ``n``) so tensor cores get aligned shapes.

    Non-zero only for 16-bit gradients on a CUDA device and when the padded count still fits in
    ``n``. The padded channels carry a zero gradient, so the result is unchanged (they add
    exact zeros); only the matrix shapes the kernels see change.
    """
    if grad.device.type != "cuda" or grad.dtype not in (torch.float16, torch.bfloat16):
        return 0
    padded = -(-k // TENSOR_CORE_MULTIPLE) * TENSOR_CORE_MULTIPLE
    return padded - k if padded <= n else 0


def _channels_last_only(t: Tensor) -> bool:
    """A 4-D tensor laid out channels_last (and not also plain contiguous)."""
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def gather_rows(w: Tensor, idx: Tensor) -> Tensor:
    """``w.index_select(0, idx)`` that keeps a channels_last weight channels_last (one copy)."""
    if w.dim() == 4 and _channels_last_only(w):
        return w.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)
    return w.index_select(0, idx)


def gather_channels(t: Tensor, idx: Tensor) -> Tensor:
    """``t.index_select(1, idx)`` that keeps a channels_last tensor channels_last (one copy)."""
    if t.dim() == 4 and _channels_last_only(t):
        n, _, h, w = t.shape
        out = torch.empty(
            (n, idx.numel(), h, w),
            dtype=t.dtype,
            device=t.device,
            memory_format=torch.channels_last,
        )
        torch.index_select(t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]), 1, idx,
                           out=out.permute(0, 2, 3, 1).view(-1, idx.numel()))  # fmt: skip
        return out
    return t.index_select(1, idx)


def select(scores: Tensor, k: int, selection: str = "topk") -> Tensor:
    """Indices (int64) of ``k`` entries kept along the last dim of ``scores``, unsorted.

    ``scores`` is ``[n]`` or ``[groups, n]`` (one selection per row). ``"topk"`` keeps the
    largest scores; ``"random"`` keeps ``k`` uniformly random entries (global torch RNG).
    """
    n = scores.shape[-1]
    if k >= n:
        base = torch.arange(n, device=scores.device)
        return base.expand(scores.shape).clone() if scores.dim() > 1 else base
    if selection == "random":
        rnd = torch.rand(scores.shape, device=scores.device)
        return torch.topk(rnd, k, dim=-1, sorted=False).indices
    return torch.topk(scores, k, dim=-1, sorted=False).indices


def select_grouped(scores: Tensor, groups: int, drop_rate: float, selection: str) -> Tensor:
    """Kept output-channel indices for a convolution with ``groups`` groups (flat, int64).

    ``K = num_kept(C_out / groups)`` channels are kept *in every group*, so the kept channels of
    group g occupy a contiguous block of the result and the shrunk convolution is still grouped.
    """
    c = scores.shape[0]
    per_group = c // groups
    k = num_kept(per_group, drop_rate)
    idx = select(scores.view(groups, per_group), k, selection)
    if groups == 1:
        return idx.view(-1)
    offsets = torch.arange(groups, device=scores.device).unsqueeze(1) * per_group
    return (idx + offsets).reshape(-1)


def mask_grad(grad: Tensor, drop_rate: float, dims: str, selection: str = "topk") -> Tensor:
    """Return ``grad`` (N, C, ...) with the dropped entries zeroed (no compute saved).

    ``dims="channel"``: rank channels; ``"spatial"``: rank positions (dims 2..); ``"all"``: rank
    every (C, ...) element. Used for the ``"spatial"``/``"all"`` modes and as a reference.
    """
    if dims == "channel":
        keep_dims: tuple[int, ...] = (1,)
    elif dims == "spatial":
        keep_dims = tuple(range(2, grad.dim()))
    else:
        keep_dims = tuple(range(1, grad.dim()))
    scores = importance(grad, keep_dims).reshape(-1)
    k = num_kept(scores.numel(), drop_rate)
    idx = select(scores, k, selection)
    mask = torch.zeros(scores.numel(), dtype=grad.dtype, device=grad.device)
    mask[idx] = 1
    shape = [1] * grad.dim()
    for d in keep_dims:
        shape[d] = grad.shape[d]
    return grad * mask.view(shape)


def needs_grad(*tensors: Tensor | None) -> bool:
    """True when autograd is on and any of ``tensors`` requires grad."""
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


class SparseSettings:
    """ssProp settings shared by :class:`~ssprop.SparseConv2d` and :class:`~ssprop.SparseLinear`.

    A mixin placed before the torch layer class: ``drop_rate`` (current, validated on every
    assignment), ``target_drop_rate`` (what ``convert``/the constructor configured; schedulers
    scale it), ``selection`` and ``dims``.
    """

    _drop_rate: float
    target_drop_rate: float
    selection: str
    dims: str

    def _configure_sparse(self, drop_rate: float, selection: str, dims: str) -> None:
        self.drop_rate = drop_rate
        self.target_drop_rate = self.drop_rate
        self.selection = validate_selection(selection)
        self.dims = validate_dims(dims)

    @property
    def drop_rate(self) -> float:
        """Current fraction of output channels (features) dropped in the backward, in [0, 1)."""
        return self._drop_rate

    @drop_rate.setter
    def drop_rate(self, value: float) -> None:
        self._drop_rate = validate_drop_rate(value)

    def _native_path(self, input: Tensor) -> bool:
        """Drop rate 0, eval mode or no gradient wanted: the torch layer's own computation."""
        return (
            self._drop_rate == 0.0
            or not self.training  # type: ignore[attr-defined]
            or not needs_grad(input, self.weight, self.bias)  # type: ignore[attr-defined]
        )

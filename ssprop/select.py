"""Gradient importance and selection for ssProp (paper Fig. 1a), aten implementation.

The importance of an output channel is the mean absolute value of its gradient over every other
dimension (batch, height, width), accumulated in float32 whatever the gradient's dtype. The
backward ranks by the *sum* (same order, one division fewer). The kept count is
``K = max(1, floor((1 - drop_rate) * n))`` — the paper's reference code floors; a ``1e-9``
guard keeps ``(1 - 0.8) * 10`` at 2 instead of 1.9999… -> 1.

Selection never sorts: ``torch.topk(sorted=False)`` for ``"topk"``; ``"random"`` keeps K
uniformly random entries and never computes the importance.

``dims`` modes (the paper's sensitivity study): ``"channel"`` ranks output channels (the only
mode that saves compute: the backward runs on the kept channels only); ``"spatial"`` ranks the
(H, W) positions by mean |grad| over batch and channels; ``"all"`` ranks every (C, H, W) element
by its mean |grad| over the batch. ``"spatial"`` and ``"all"`` only *mask* the gradient (the
dropped entries become zero) and then run the dense backward: they save no compute.

``scores``, ``gather`` and ``gather_weight_rows`` dispatch to the Triton kernels
(``ssprop.kernels``) for ``backend="triton"``; everything else here is torch operators.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ssprop.settings import DIMS, SELECTIONS  # noqa: F401  (re-exported: greentrain reads them)


def num_kept(n: int, drop_rate: float) -> int:
    """Number of entries kept out of ``n``: ``max(1, floor((1 - drop_rate) * n))``."""
    return max(1, min(n, int(math.floor((1.0 - drop_rate) * n + 1e-9))))


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def importance(grad: Tensor, keep_dims: tuple[int, ...]) -> Tensor:
    """Mean |grad| over every dim not in ``keep_dims`` (float32; float64 for float64 grads)."""
    keep = {d % grad.dim() for d in keep_dims}
    reduce = tuple(d for d in range(grad.dim()) if d not in keep)
    acc = _acc_dtype(grad)
    if not reduce:
        return grad.abs().to(acc)
    count = math.prod(grad.shape[d] for d in reduce)
    total = torch.linalg.vector_norm(grad, ord=1, dim=reduce, dtype=acc)
    return total / max(count, 1)


def channel_importance(grad: Tensor, dim: int = 1) -> Tensor:
    """Importance of each channel along ``dim`` (shape ``[C]``, float32): mean |grad|."""
    total, count = channel_abs_sum(grad, dim)
    return total / count


def channel_abs_sum(grad: Tensor, dim: int = 1) -> tuple[Tensor, int]:
    """``(sum |grad| per channel along dim, number of summed elements per channel)``.

    The accumulation is float32 (float64 for float64 gradients) everywhere.

    * channels_last 4-D tensors are ``[N, H*W, C]``, summed over H*W then N. CPU: ``abs``
      then a float32 ``sum`` (single-threaded, 1.2-1.4 ms vs 1.7 ms for one sum over N*H*W
      at 64x128x16x16); GPU: ``vector_norm(ord=1)`` (360 us vs 576 us for one reduction over
      (N, H, W) on an H100, ResNet-50 shapes, bf16). 2-D ``[M, F]`` gradients (linear layers)
      sum over M (``_column_abs_sum``).
    * CPU, contiguous NCHW-like: ``[N, C, rest]``, |.| then a float32 ``sum`` over ``rest``
      and N. GPU, any other layout: one fused ``vector_norm(ord=1)``.
    * Elsewhere: ``importance``.
    """
    acc = _acc_dtype(grad)
    dim = dim % grad.dim()
    count = max(grad.numel() // max(grad.shape[dim], 1), 1)
    on_cpu = grad.device.type == "cpu"
    if grad.dim() == 2 and dim == 1 and grad.stride(1) == 1:
        return _column_abs_sum(grad, acc), count
    if dim == 1 and grad.dim() == 4 and _channels_last_only(grad):
        n, c = grad.shape[0], grad.shape[1]
        rows = grad.permute(0, 2, 3, 1).reshape(n, -1, c)  # [N, H*W, C], a view
        if on_cpu:
            return rows.abs().sum(1, dtype=acc).sum(0), count
        return torch.linalg.vector_norm(rows, 1, dim=1, dtype=acc).sum(0), count
    if not on_cpu:
        reduce = tuple(d for d in range(grad.dim()) if d != dim)
        return torch.linalg.vector_norm(grad, 1, dim=reduce, dtype=acc), count
    if dim == 1 and grad.dim() >= 2 and grad.is_contiguous():
        n, c = grad.shape[0], grad.shape[1]
        return grad.reshape(n, c, -1).abs().sum(2, dtype=acc).sum(0), count
    return importance(grad, (dim,)) * count, count


def _column_abs_sum(rows: Tensor, acc: torch.dtype) -> Tensor:
    """``|rows|.sum(0)`` of a row-major ``[R, C]`` matrix.

    CPU: ``abs`` then a float32-accumulating ``sum``. Measured inside ResNet-18's backward
    (CIFAR, batch 64, channels_last, 2 cores; the same sum over ``[N*H*W, C]`` views), the
    per-step total was the same for this (25.7 ms), an inductor-compiled fused abs+sum
    (25.8 ms) and |.| by chunks of 2^20 elements into one reused buffer (23.5 ms, within
    noise; 2^16: 43.7 ms, the parallel regions multiply): reading the gradient bounds them
    all. GPU: one ``vector_norm(ord=1)``.
    """
    if rows.device.type != "cpu":
        return torch.linalg.vector_norm(rows, 1, dim=0, dtype=acc)
    return rows.abs().sum(0, dtype=acc)


def scores(grad: Tensor, dim: int, backend: str) -> Tensor:
    """Per-channel ``sum |grad|`` along ``dim`` (1 for 4-D, the last for 2-D) with ``backend``
    (``"aten"`` or ``"triton"``); float32 (float64 for float64 gradients)."""
    if backend == "triton":
        from ssprop import kernels

        return kernels.load().channel_abs_sum(grad)
    return channel_abs_sum(grad, dim)[0]


# Tensor cores take matrix dimensions in multiples of 8 (16-bit types): an odd kept-channel
# count sends cuDNN to slower kernels. Measured on an H100 (ResNet-50 convs at 224x224, batch 64,
# bf16, channels_last): the shrunk conv backward summed over the layers took 1.06x the dense
# backward with K = floor(0.2 C) and 0.87x with K padded to a multiple of 8.
TENSOR_CORE_MULTIPLE = 8


def tensor_core_padding(grad: Tensor, k: int, n: int) -> int:
    """Channels to append to ``k`` kept channels (of ``n``) so tensor cores get aligned shapes.

    Non-zero only for 16-bit gradients on a CUDA device and when the padded count still fits in
    ``n``. The padded weight rows are zero (and the padded gradient channels zero with the
    Triton gather, copies of a kept channel with the aten one), so they add exact zeros to
    grad_input; their grad_weight rows and grad_bias entries are discarded.
    """
    if grad.device.type != "cuda" or grad.dtype not in (torch.float16, torch.bfloat16):
        return 0
    padded = -(-k // TENSOR_CORE_MULTIPLE) * TENSOR_CORE_MULTIPLE
    return padded - k if padded <= n else 0


def _channels_last_only(t: Tensor) -> bool:
    """A 4-D tensor laid out channels_last (and not also plain contiguous)."""
    return (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    )


def gather_rows(w: Tensor, idx: Tensor) -> Tensor:
    """``w.index_select(0, idx)`` that keeps a channels_last weight channels_last (one copy)."""
    if _channels_last_only(w):
        return w.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)
    return w.index_select(0, idx)


def gather_channels(t: Tensor, idx: Tensor) -> Tensor:
    """``t.index_select(1, idx)`` that keeps a channels_last tensor channels_last (one copy).

    channels_last on CUDA uses advanced indexing (one pass in output order) instead of
    ``index_select``, whose kernel for <= 16 indices walks the channel column with strided
    reads and writes.
    """
    if _channels_last_only(t):
        n, c, h, w = t.shape
        k = idx.numel()
        rows = t.permute(0, 2, 3, 1).reshape(-1, c)
        if t.device.type == "cuda":
            return rows[:, idx].view(n, h, w, k).permute(0, 3, 1, 2)
        out = torch.empty(
            (n, k, h, w), dtype=t.dtype, device=t.device, memory_format=torch.channels_last
        )
        torch.index_select(rows, 1, idx, out=out.permute(0, 2, 3, 1).view(-1, k))
        return out
    return t.index_select(1, idx)


def gather(grad: Tensor, idx: Tensor, pad: int, backend: str) -> Tensor:
    """Channels ``idx`` of ``grad`` (dim 1) and ``pad`` extra channels that carry no gradient
    into grad_input (zeros with triton; copies of ``idx[0]`` with aten, whose weight rows are
    zero: see ``tensor_core_padding``), in ``grad``'s layout."""
    if backend == "triton":
        from ssprop import kernels

        return kernels.load().gather_channels(grad, idx, pad)
    if pad:
        idx = torch.cat([idx, idx[:1].expand(pad)])
    if grad.dim() == 2:
        return grad.index_select(1, idx)
    return gather_channels(grad, idx)


def gather_weight_rows(
    w: Tensor, idx: Tensor, pad: int, dtype: torch.dtype, backend: str
) -> Tensor:
    """Rows ``idx`` of ``w`` then ``pad`` zero rows, as ``dtype``, in ``w``'s memory format.

    Only the kept rows are cast (a weight saved in its parameter dtype under autocast).
    """
    if backend == "triton":
        from ssprop import kernels

        rows = kernels.load().gather_rows(w, idx, pad)
        return rows if rows.dtype == dtype else rows.to(dtype)
    if not pad:
        rows = gather_rows(w, idx)
        return rows if rows.dtype == dtype else rows.to(dtype)
    rows = weight_rows(w).index_select(0, idx).to(dtype)
    rows = torch.cat([rows, rows.new_zeros(pad, rows.shape[1])])
    return rows_as_weight(rows, w)


def weight_rows(w: Tensor) -> Tensor:
    """``w`` as a ``[C_out, rest]`` matrix of its memory rows (a view; channels_last weights
    are ``[C_out, kh*kw*C_in]``)."""
    if _channels_last_only(w):
        return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)
    return w.reshape(w.shape[0], -1)


def rows_as_weight(rows: Tensor, like: Tensor) -> Tensor:
    """Inverse of ``weight_rows``: ``[R, rest]`` rows viewed as ``like``'s trailing shape and
    memory format."""
    if _channels_last_only(like):
        _, cin, kh, kw = like.shape
        return rows.view(rows.shape[0], kh, kw, cin).permute(0, 3, 1, 2)
    return rows.view(rows.shape[0], *like.shape[1:])


def select(scores: Tensor, k: int, selection: str = "topk") -> Tensor:
    """Indices (int64) of ``k`` entries kept along the last dim of ``scores``, unsorted.

    ``scores`` is ``[n]`` or ``[groups, n]`` (one selection per row). ``"topk"`` keeps the
    largest scores; ``"random"`` keeps ``k`` uniformly random entries (global torch RNG; the
    values of ``scores`` are not read, so ``random_select`` can skip computing them).
    """
    n = scores.shape[-1]
    if k >= n:
        base = torch.arange(n, device=scores.device)
        return base.expand(scores.shape).clone() if scores.dim() > 1 else base
    if selection == "random":
        return random_select(tuple(scores.shape), k, scores.device)
    return torch.topk(scores, k, dim=-1, sorted=False).indices


def random_select(shape: tuple[int, ...], k: int, device: torch.device) -> Tensor:
    """``k`` uniformly random indices along the last dim of ``shape`` (one draw per row)."""
    n = shape[-1]
    if k >= n:
        base = torch.arange(n, device=device)
        return base.expand(shape).clone() if len(shape) > 1 else base
    return torch.topk(torch.rand(shape, device=device), k, dim=-1, sorted=False).indices


def grouped_offsets(idx: Tensor, groups: int, per_group: int) -> Tensor:
    """Flat channel indices from per-group ``[groups, k]`` indices (group g's block first)."""
    if groups == 1:
        return idx.reshape(-1)
    offsets = torch.arange(groups, device=idx.device).unsqueeze(1) * per_group
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
    imp = importance(grad, keep_dims).reshape(-1)
    idx = select(imp, num_kept(imp.numel(), drop_rate), selection)
    mask = torch.zeros(imp.numel(), dtype=grad.dtype, device=grad.device)
    mask[idx] = 1
    shape = [1] * grad.dim()
    for d in keep_dims:
        shape[d] = grad.shape[d]
    return grad * mask.view(shape)

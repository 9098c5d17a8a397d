"""Triton kernels for ssProp's selection: per-channel |grad| sums and channel gathers.

Layouts. A 4-D channels_last tensor ``[N, C, H, W]`` is the row-major matrix ``[N*H*W, C]``
(channels innermost); a contiguous (NCHW) one is ``[N, C, H*W]`` (positions innermost); a 2-D
``[M, F]`` tensor (a linear layer's gradient) is row-major with F innermost. Every kernel
reads and writes along the innermost dimension, so accesses are coalesced in both layouts.
Other layouts are made contiguous first (one copy).

* ``channel_abs_sum(t)``: ``sum |t|`` per channel (dim 1 of 4-D, last dim of 2-D), accumulated
  in float32 (float64 for float64 input) in registers: one read of ``t``, no temporary of its
  size. Each program sums a block of rows into a partial row; the few partial rows
  (``_PARTIALS_PER_SM`` per streaming multiprocessor, so every SM has work while the partial
  buffer stays a few MB at most) are then summed by ``torch.sum`` (deterministic, no atomics).
* ``gather_channels(t, idx, pad)``: the channels ``idx`` of ``t`` (``t.index_select(1, idx)``
  in ``t``'s layout) followed by ``pad`` zero channels, in one pass.
* ``gather_rows(w, idx, pad)``: rows ``idx`` of a weight (any trailing shape) followed by
  ``pad`` zero rows, in ``w``'s memory format.

The kernels copy values bit for bit (no dtype conversion: a cast is left to torch, whose
rounding is the reference).

Under ``TRITON_INTERPRET=1`` (set before this module is imported) the same kernels run on CPU
tensors; the tests use that to check them against torch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

_PARTIALS_PER_SM = 8  # row blocks summed separately per SM, then reduced by torch.sum
_TILE = 4096  # elements per program tile (fp32 accumulators: 32 per thread with 4 warps)


@triton.jit
def _col_abs_sum_kernel(
    x_ptr, part_ptr, R, C, stride_r, rows_per_prog, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr
):
    """part[p, c] = sum_{r in block p} |x[r, c]| for a row-major [R, C] x (row stride given)."""
    p = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    acc = tl.zeros((BLOCK_R, BLOCK_C), dtype=part_ptr.dtype.element_ty)
    start = p * rows_per_prog
    for r0 in range(start, start + rows_per_prog, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        ok = (rows < R)[:, None] & col_ok[None, :]
        ptrs = x_ptr + rows.to(tl.int64)[:, None] * stride_r + cols[None, :]
        v = tl.load(ptrs, mask=ok, other=0.0)
        acc += tl.abs(v.to(part_ptr.dtype.element_ty))
    tl.store(part_ptr + p * C + cols, tl.sum(acc, axis=0), mask=col_ok)


@triton.jit
def _row_abs_sum_kernel(x_ptr, out_ptr, NROWS, L, BLOCK_ROWS: tl.constexpr, BLOCK_L: tl.constexpr):
    """out[i] = sum_l |x[i, l]| for a contiguous [NROWS, L] x."""
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    row_ok = rows < NROWS
    acc = tl.zeros((BLOCK_ROWS, BLOCK_L), dtype=out_ptr.dtype.element_ty)
    base = rows.to(tl.int64)[:, None] * L
    for l0 in range(0, L, BLOCK_L):
        cols = l0 + tl.arange(0, BLOCK_L)
        ok = row_ok[:, None] & (cols < L)[None, :]
        v = tl.load(x_ptr + base + cols[None, :], mask=ok, other=0.0)
        acc += tl.abs(v.to(out_ptr.dtype.element_ty))
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=row_ok)


@triton.jit
def _gather_cols_kernel(
    x_ptr, idx_ptr, y_ptr, R, K, KP, stride_xr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr
):
    """y[r, j] = x[r, idx[j]] for j < K, 0 for K <= j < KP; y is a contiguous [R, KP]."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    js = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    src = tl.load(idx_ptr + js, mask=js < K, other=0)
    row_ok = (rows < R)[:, None]
    rows64 = rows.to(tl.int64)[:, None]
    v = tl.load(x_ptr + rows64 * stride_xr + src[None, :], mask=row_ok & (js < K)[None, :], other=0)
    tl.store(y_ptr + rows64 * KP + js[None, :], v, mask=row_ok & (js < KP)[None, :])


@triton.jit
def _gather_mid_kernel(
    x_ptr, idx_ptr, y_ptr, K, KP, L, stride_xa, stride_xc,
    BLOCK_J: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    """y[a, j, l] = x[a, idx[j], l] for j < K, 0 for K <= j < KP; y is a contiguous [A, KP, L]."""
    a = tl.program_id(0).to(tl.int64)
    js = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    ls = tl.program_id(2) * BLOCK_L + tl.arange(0, BLOCK_L)
    src = tl.load(idx_ptr + js, mask=js < K, other=0).to(tl.int64)
    l_ok = (ls < L)[None, :]
    v = tl.load(
        x_ptr + a * stride_xa + src[:, None] * stride_xc + ls[None, :],
        mask=(js < K)[:, None] & l_ok,
        other=0,
    )
    y = y_ptr + a * KP * L + js.to(tl.int64)[:, None] * L + ls[None, :]
    tl.store(y, v, mask=(js < KP)[:, None] & l_ok)


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _max_partials(device: torch.device) -> int:
    if device.type != "cuda":
        return 8 * _PARTIALS_PER_SM  # the interpreter: any small grid
    return torch.cuda.get_device_properties(device).multi_processor_count * _PARTIALS_PER_SM


def _channels_last_only(t: Tensor) -> bool:
    return (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    )


def _col_abs_sum(x2: Tensor, acc: torch.dtype) -> Tensor:
    """Column sums of |x2| for a [R, C] matrix whose columns are unit-stride."""
    r, c = x2.shape
    block_c = min(128, triton.next_power_of_2(c))
    block_r = max(1, min(_TILE // block_c, triton.next_power_of_2(r)))
    blocks = triton.cdiv(r, block_r)
    rows_per_prog = triton.cdiv(blocks, min(blocks, _max_partials(x2.device))) * block_r
    progs = triton.cdiv(r, rows_per_prog)
    part = torch.empty(progs, c, dtype=acc, device=x2.device)
    grid = (progs, triton.cdiv(c, block_c))
    _col_abs_sum_kernel[grid](x2, part, r, c, x2.stride(0), rows_per_prog, block_r, block_c)
    return part.sum(0)


def channel_abs_sum(t: Tensor) -> Tensor:
    """``sum |t|`` per channel: dim 1 of a 4-D tensor, the last dim of a 2-D one; shape ``[C]``,
    float32 (float64 for float64 input)."""
    acc = _acc_dtype(t)
    if t.dim() == 2:
        return _col_abs_sum(t if t.stride(1) == 1 else t.contiguous(), acc)
    n, c, h, w = t.shape
    if _channels_last_only(t):
        return _col_abs_sum(t.permute(0, 2, 3, 1).reshape(-1, c), acc)
    t = t.contiguous()
    rows, length = n * c, h * w
    block_l = min(1024, triton.next_power_of_2(length))
    block_rows = max(1, min(_TILE // block_l, triton.next_power_of_2(rows)))
    out = torch.empty(rows, dtype=acc, device=t.device)
    _row_abs_sum_kernel[(triton.cdiv(rows, block_rows),)](t, out, rows, length, block_rows, block_l)
    return out.view(n, c).sum(0)


def _gather_mid(x3: Tensor, idx: Tensor, pad: int) -> Tensor:
    """``[A, C, L] -> [A, K + pad, L]`` (contiguous) with x3's L dim unit-stride."""
    a, _, length = x3.shape
    k = idx.numel()
    kp = k + pad
    y = torch.empty(a, kp, length, dtype=x3.dtype, device=x3.device)
    block_l = min(1024, triton.next_power_of_2(length))
    block_j = max(1, min(_TILE // block_l, triton.next_power_of_2(kp)))
    grid = (a, triton.cdiv(kp, block_j), triton.cdiv(length, block_l))
    _gather_mid_kernel[grid](
        x3, idx, y, k, kp, length, x3.stride(0), x3.stride(1), block_j, block_l
    )
    return y


def gather_channels(t: Tensor, idx: Tensor, pad: int = 0) -> Tensor:
    """Channels ``idx`` of ``t`` then ``pad`` zero channels, in ``t``'s layout (one pass).

    ``t`` is 4-D ``[N, C, H, W]`` (channel dim 1) or 2-D ``[M, F]`` (feature dim 1).
    """
    idx = idx.contiguous()
    k = idx.numel()
    kp = k + pad
    if t.dim() == 4 and not _channels_last_only(t):
        n, c, h, w = t.shape
        t = t.contiguous()
        return _gather_mid(t.view(n, c, h * w), idx, pad).view(n, kp, h, w)
    if t.dim() == 4:
        n, c, h, w = t.shape
        x2 = t.permute(0, 2, 3, 1).reshape(-1, c)
    else:
        x2 = t if t.stride(1) == 1 else t.contiguous()
    r = x2.shape[0]
    y = torch.empty(r, kp, dtype=t.dtype, device=t.device)
    block_k = min(64, triton.next_power_of_2(kp))
    block_r = max(1, min(_TILE // block_k, triton.next_power_of_2(r)))
    grid = (triton.cdiv(r, block_r), triton.cdiv(kp, block_k))
    _gather_cols_kernel[grid](x2, idx, y, r, k, kp, x2.stride(0), block_r, block_k)
    if t.dim() == 4:
        return y.view(n, h, w, kp).permute(0, 3, 1, 2)
    return y


def gather_rows(w: Tensor, idx: Tensor, pad: int = 0) -> Tensor:
    """Rows ``idx`` of ``w`` then ``pad`` zero rows, in ``w``'s memory format (one pass)."""
    kp = idx.numel() + pad
    if _channels_last_only(w):
        c, cin, kh, kw = w.shape
        out = _gather_mid(w.permute(0, 2, 3, 1).reshape(1, c, -1), idx.contiguous(), pad)
        return out.view(kp, kh, kw, cin).permute(0, 3, 1, 2)
    w = w.contiguous()
    out = _gather_mid(w.view(1, w.shape[0], -1), idx.contiguous(), pad)
    return out.view(kp, *w.shape[1:])

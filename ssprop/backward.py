"""The sparse backward of a convolution / linear layer on given kept output channels.

Inputs: the output gradient ``grad`` (its dtype is the compute dtype), the layer input ``x`` and
``weight`` as saved by the forward (possibly in another dtype under autocast: only the kept
weight rows are cast), the kept indices ``idx`` (int64, unsorted; for a grouped convolution
group g's block of kept channels comes g-th) and which of grad_input / grad_weight / grad_bias
are needed. Outputs: grad_input in ``x``'s dtype, grad_weight in ``weight``'s dtype and memory
format (zero rows outside ``idx``), grad_bias in ``weight``'s dtype (zero outside ``idx``);
``None`` where not needed. The result equals the dense backward with the dropped channels of
``grad`` set to zero; nothing is rescaled.

Paths (``conv2d``):

* generic: gather the kept channels of ``grad`` and rows of ``weight`` (``select.gather``,
  aten or Triton, with tensor-core padding on CUDA 16-bit) and call
  ``aten.convolution_backward`` on the shrunk tensors.
* depthwise-like (one output channel per group): the shrunk convolution runs on the kept
  groups only (their input channels gathered too).
* CPU, small 1x1 convolutions (``_is_pointwise``): plain GEMMs on the kept channels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssprop import select as sel

Needs = tuple[bool, bool, bool]
Grads = tuple[Tensor | None, Tensor | None, Tensor | None]

# The GEMM backward of a 1x1 conv beats oneDNN's only where few output positions make oneDNN's
# fixed costs dominate (CPU only; a GPU takes the cuDNN path with aligned shapes): on the 2-core
# CPU, ResNet-18's 256->512 stride-2 downsample (M = 1024) went from 0.59x to 0.39x dense, at
# M = 4096 both paths tie, at M = 16384 GEMMs lost (0.81x vs 0.64x; strided input copy +
# zero-filled grad_input dominate).
_POINTWISE_GEMM_MAX_POSITIONS = 4096


def scatter_rows(rows_k: Tensor, idx: Tensor, like: Tensor) -> Tensor:
    """A zero tensor shaped, typed and laid out like ``like`` whose rows ``idx`` are ``rows_k``.

    One zero-fill in the final dtype and one ``index_copy_`` of the kept rows (cast first if
    needed, K rows only): no full-size temporary in the compute dtype.
    """
    if rows_k.dtype != like.dtype:
        rows_k = rows_k.to(like.dtype)
    return torch.zeros_like(like).index_copy_(0, idx, rows_k)


def scatter_entries(vals_k: Tensor, idx: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """A ``[n]`` zero vector of ``dtype`` with entries ``idx`` set to ``vals_k``."""
    out = torch.zeros(n, dtype=dtype, device=vals_k.device)
    return out.index_copy_(0, idx, vals_k if vals_k.dtype == dtype else vals_k.to(dtype))


def _channels_last(t: Tensor) -> bool:
    return (
        t.dim() == 4
        and not t.is_contiguous()
        and t.is_contiguous(memory_format=torch.channels_last)
    )


def conv2d(
    grad: Tensor,
    x: Tensor,
    weight: Tensor,
    idx: Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    needs: Needs,
    backend: str,
) -> Grads:
    """Sparse backward of ``conv2d(x, weight, bias, stride, padding, dilation, groups)`` on the
    kept output channels ``idx``; ``backend`` is ``"aten"`` or ``"triton"`` (resolved)."""
    need_x, need_w, need_b = needs
    cdt = grad.dtype
    xc = x if x.dtype == cdt else x.to(cdt)
    c_out = weight.shape[0]
    if groups > 1 and c_out == groups:
        gi, gw, gb = _depthwise(grad, xc, weight, idx, stride, padding, dilation, needs, backend)
    elif groups == 1 and backend == "aten" and _is_pointwise(weight, padding, xc, grad):
        gi, gw, gb = _pointwise(grad, xc, weight, idx, stride, needs)
    else:
        k = idx.numel()
        pad = sel.tensor_core_padding(grad, k, c_out) if groups == 1 else 0
        go_k = sel.gather(grad, idx, pad, backend)
        w_k = sel.gather_weight_rows(weight, idx, pad, cdt, backend)
        gi, gw_k, gb_k = torch.ops.aten.convolution_backward(
            go_k, xc, w_k, [k + pad], stride, padding, dilation, False, [0, 0], groups,
            [need_x, need_w, need_b],
        )  # fmt: skip
        if pad:
            gw_k = gw_k[:k] if need_w else None
            gb_k = gb_k[:k] if need_b else None
        gw = scatter_rows(gw_k, idx, weight) if need_w else None
        gb = scatter_entries(gb_k, idx, c_out, weight.dtype) if need_b else None
    if gi is not None and gi.dtype != x.dtype:
        gi = gi.to(x.dtype)
    return gi if need_x else None, gw, gb


def _is_pointwise(w: Tensor, padding: list[int], x: Tensor, grad: Tensor) -> bool:
    """A small 1x1, unpadded conv on the CPU whose input and grad_output share one layout."""
    if x.device.type != "cpu" or w.shape[2:] != (1, 1) or any(padding) or x.dim() != 4:
        return False
    if grad.numel() // max(grad.shape[1], 1) > _POINTWISE_GEMM_MAX_POSITIONS:
        return False
    if x.is_contiguous() and grad.is_contiguous():
        return True
    cl = torch.channels_last
    return x.is_contiguous(memory_format=cl) and grad.is_contiguous(memory_format=cl)


def _pointwise(
    grad: Tensor, x: Tensor, w: Tensor, idx: Tensor, stride: list[int], needs: Needs
) -> Grads:
    """Sparse backward of a (small, see ``_is_pointwise``) 1x1 conv as plain GEMMs.

    With M = N * H_out * W_out positions, K kept channels and the (strided) input positions
    ``x_s``: ``grad_input_s = g_K @ W_K`` and ``grad_weight_K = g_K^T @ x_s``; grad_input is
    zero at the input positions a stride skips. Same sums as ``convolution_backward``, without
    the oneDNN call overhead (which dominates these small layers).
    """
    need_x, need_w, need_b = needs
    n, c_in, h, wd = x.shape
    c_out = w.shape[0]
    sh, sw = stride
    ho, wo = grad.shape[2], grad.shape[3]
    gi = gw = gb = None
    w_k = sel.weight_rows(w).index_select(0, idx).to(grad.dtype) if need_x else None  # [K, C_in]
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # channels_last: every tensor is an [positions, channels] matrix
        go_k = grad.permute(0, 2, 3, 1).reshape(-1, c_out).index_select(1, idx)  # [M, K]
        if need_w:
            xs = x.permute(0, 2, 3, 1)[:, ::sh, ::sw, :].reshape(-1, c_in)  # [M, C_in]
            gw = scatter_rows((go_k.t() @ xs).view(-1, c_in, 1, 1), idx, w)
        if need_x:
            gi_s = go_k @ w_k  # [M, C_in]
            if sh == sw == 1:
                gi = gi_s.view(n, ho, wo, c_in).permute(0, 3, 1, 2)
            else:
                gi = torch.zeros_like(x, memory_format=torch.channels_last)
                gi.permute(0, 2, 3, 1)[:, ::sh, ::sw, :] = gi_s.view(n, ho, wo, c_in)
        if need_b:
            gb = scatter_entries(go_k.sum(0), idx, c_out, w.dtype)
        return gi, gw, gb
    # contiguous NCHW: batched [channels, positions] matrices
    go_k = grad.reshape(n, c_out, -1).index_select(1, idx)  # [N, K, L]
    if need_w:
        xs = x[:, :, ::sh, ::sw].reshape(n, c_in, -1)  # [N, C_in, L]
        gw = scatter_rows(torch.bmm(go_k, xs.transpose(1, 2)).sum(0).view(-1, c_in, 1, 1), idx, w)
    if need_x:
        gi_s = torch.matmul(w_k.t(), go_k)  # [N, C_in, L]
        if sh == sw == 1:
            gi = gi_s.view(n, c_in, ho, wo)
        else:
            gi = x.new_zeros(n, c_in, h, wd)
            gi[:, :, ::sh, ::sw] = gi_s.view(n, c_in, ho, wo)
    if need_b:
        gb = scatter_entries(go_k.sum((0, 2)), idx, c_out, w.dtype)
    return gi, gw, gb


def _depthwise(grad, x, w, idx, stride, padding, dilation, needs: Needs, backend: str) -> Grads:
    """Backward of a conv with one output channel per group on the kept groups only."""
    need_x, need_w, need_b = needs
    c_out, cin_g = w.shape[0], w.shape[1]
    k = idx.numel()
    in_idx = (idx.unsqueeze(1) * cin_g + torch.arange(cin_g, device=idx.device)).reshape(-1)
    go_k = sel.gather(grad, idx, 0, backend)
    w_k = sel.gather_weight_rows(w, idx, 0, grad.dtype, backend)
    x_k = sel.gather(x, in_idx, 0, backend)
    gi_k, gw_k, gb_k = torch.ops.aten.convolution_backward(
        go_k, x_k, w_k, [k], stride, padding, dilation, False, [0, 0], k, [need_x, need_w, need_b]
    )
    gi = gw = gb = None
    if need_x:
        fmt = torch.channels_last if _channels_last(gi_k) else torch.contiguous_format
        gi = torch.zeros_like(x, memory_format=fmt).index_copy_(1, in_idx, gi_k)
    if need_w:
        gw = scatter_rows(gw_k, idx, w)
    if need_b:
        gb = scatter_entries(gb_k, idx, c_out, w.dtype)
    return gi, gw, gb


def linear(
    grad: Tensor, x: Tensor, weight: Tensor, idx: Tensor, needs: Needs, backend: str
) -> Grads:
    """Sparse backward of ``linear(x, weight, bias)`` on the kept output features ``idx``.

    With ``M`` rows (all but the last dim) and ``K`` kept features, ``g_K`` the ``[M, K]``
    gathered gradient: grad_input ``= g_K @ W_K``, grad_weight rows ``= g_K^T @ x``, grad_bias
    entries ``= sum_M g_K``.
    """
    need_x, need_w, need_b = needs
    out_f, in_f = weight.shape
    cdt = grad.dtype
    g_k = sel.gather(grad.reshape(-1, out_f), idx, 0, backend)  # [M, K]
    gi = gw = gb = None
    if need_x:
        w_k = sel.gather_weight_rows(weight, idx, 0, cdt, backend)
        gi = (g_k @ w_k).reshape(*grad.shape[:-1], in_f).to(x.dtype)
    if need_w:
        x2 = x.reshape(-1, in_f)
        gw = scatter_rows(g_k.t() @ (x2 if x2.dtype == cdt else x2.to(cdt)), idx, weight)
    if need_b:
        gb = scatter_entries(g_k.sum(0), idx, out_f, weight.dtype)
    return gi, gw, gb

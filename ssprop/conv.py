"""``SparseConv2d``: an ``nn.Conv2d`` whose backward runs on the most important output channels.

Forward is ``nn.Conv2d``'s (bit-identical output). In training, with ``drop_rate > 0`` and a
gradient to compute, the backward ranks output channels by mean |grad_output| over (N, H, W)
(float32 accumulation), keeps ``K = max(1, floor((1 - drop_rate) * C_out))`` of them (the paper's
reference code floors), gathers those channels of grad_output once and calls
``aten.convolution_backward`` on the shrunk grad_output and weight slices: grad_input, the kept
rows of grad_weight and the kept entries of grad_bias. Dropped rows/entries are zero; nothing
is rescaled. The result equals the dense backward with the dropped channels of grad_output set
to zero.

On the CPU, small 1x1 convolutions (few output positions, groups=1, no padding) compute the
same sums as plain GEMMs on the kept channels instead of calling oneDNN (see
``_pointwise_backward``). On a GPU with 16-bit gradients, K is padded up to a multiple of 8
with zero-gradient channels so that tensor cores see aligned shapes
(``select.tensor_core_padding``); the result is unchanged.

Groups: with ``C_out / groups > 1`` channels per group, K is taken *per group* (K =
``num_kept(C_out / groups)``), so the shrunk convolution is still grouped. Depthwise-like
layers (one output channel per group) rank all channels globally and run the shrunk convolution
on the kept groups only (gathering their input channels), so they save compute too.

``dims="spatial"`` / ``"all"`` (paper's sensitivity study) only mask grad_output and run the
dense backward: they save **no** compute.

With ``drop_rate == 0``, in eval mode or when no gradient is needed, the module takes
``nn.Conv2d``'s native path (no custom autograd Function, bit-identical gradients).

``torch.compile``: dynamo guards on ``drop_rate`` (a Python float, so K is a constant of the
graph) and traces the sparse backward into the compiled graph; a bar schedule (0 / D) compiles
one graph per phase and reuses them (tests/test_ssprop_fastpaths.py pins that the compiled
backward leaves dropped channels at exactly zero, i.e. no fallback to the dense backward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssprop import select as sel


def _same_padding(
    x: Tensor, kernel_size: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[Tensor, list[int]]:
    """Resolve ``padding="same"`` as torch does: symmetric ints + an extra right/bottom pad."""
    left: list[int] = []
    extra: list[int] = []
    for k, d in zip(kernel_size, dilation, strict=True):
        total = d * (k - 1)
        lo = total // 2
        left.append(lo)
        extra.append(total - 2 * lo)
    if any(extra):
        pad: list[int] = []
        for e in reversed(extra):
            pad += [0, e]
        x = F.pad(x, pad)
    return x, left


class _SparseConv2dFn(torch.autograd.Function):
    """Native conv forward; backward on the kept output channels only (see module docstring)."""

    @staticmethod
    def forward(
        ctx, x, weight, bias, stride, padding, dilation, groups, drop_rate, selection, dims
    ):
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        cdt = out.dtype  # the compute dtype (differs from the inputs' under autocast)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.save_for_backward(x if x.dtype == cdt else x.to(cdt), weight.to(cdt))
        ctx.conf = (stride, padding, dilation, groups, drop_rate, selection, dims)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups, drop_rate, selection, dims = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        if grad_out.dtype != x.dtype:
            grad_out = grad_out.to(x.dtype)
        c_out = w.shape[0]
        gi = gw = gb = None

        if dims != "channel":
            masked = sel.mask_grad(grad_out, drop_rate, dims, selection)
            gi, gw, gb = torch.ops.aten.convolution_backward(
                masked, x, w, [c_out], stride, padding, dilation, False, [0, 0], groups,
                [need_x, need_w, need_b],
            )  # fmt: skip
        else:
            scores = sel.channel_abs_sum(grad_out, 1)[0]
            per_group = c_out // groups
            if groups > 1 and per_group == 1:
                gi, gw, gb = _depthwise_backward(
                    grad_out, x, w, scores, stride, padding, dilation, drop_rate, selection,
                    (need_x, need_w, need_b),
                )  # fmt: skip
            elif groups == 1 and _is_pointwise(w, padding, x, grad_out):
                idx = sel.select(scores, sel.num_kept(c_out, drop_rate), selection)
                gi, gw, gb = _pointwise_backward(
                    grad_out, x, w, idx, stride, (need_x, need_w, need_b)
                )
            else:
                idx = sel.select_grouped(scores, groups, drop_rate, selection)
                k = idx.numel()
                pad = sel.tensor_core_padding(grad_out, k, c_out) if groups == 1 else 0
                run_idx = F.pad(idx, (0, pad)) if pad else idx  # padded with channel 0 ...
                go_k = sel.gather_channels(grad_out, run_idx)
                if pad:
                    go_k.narrow(1, k, pad).zero_()  # ... whose copies carry zero gradient
                w_k = sel.gather_rows(w, run_idx)
                gi, gw_k, gb_k = torch.ops.aten.convolution_backward(
                    go_k, x, w_k, [k + pad], stride, padding, dilation, False, [0, 0],
                    groups, [need_x, need_w, need_b],
                )  # fmt: skip
                if pad:
                    gw_k = gw_k[:k] if gw_k is not None else None
                    gb_k = gb_k[:k] if gb_k is not None else None
                if need_w:
                    gw = torch.zeros_like(w).index_copy_(0, idx, gw_k)
                if need_b:
                    gb = gb_k.new_zeros(c_out).index_copy_(0, idx, gb_k)

        x_dt, w_dt, b_dt = ctx.dtypes
        if gi is not None and need_x and gi.dtype != x_dt:
            gi = gi.to(x_dt)
        if gw is not None and need_w and gw.dtype != w_dt:
            gw = gw.to(w_dt)
        if gb is not None and need_b and gb.dtype != b_dt:
            gb = gb.to(b_dt)
        return (
            gi if need_x else None,
            gw if need_w else None,
            gb if need_b else None,
            None, None, None, None, None, None, None,
        )  # fmt: skip


# The GEMM backward of a 1x1 conv beats oneDNN's only where few output positions make oneDNN's
# fixed costs dominate (CPU only; a GPU takes the cuDNN path with aligned shapes): on the 2-core
# CPU, ResNet-18's 256->512 stride-2 downsample (M = 1024) went from 0.59x to 0.39x dense, at
# M = 4096 both paths tie, at M = 16384 GEMMs lost (0.81x vs 0.64x; strided input copy +
# zero-filled grad_input dominate).
_POINTWISE_GEMM_MAX_POSITIONS = 4096


def _is_pointwise(w: Tensor, padding, x: Tensor, grad_out: Tensor) -> bool:
    """A small 1x1, unpadded conv on the CPU whose input and grad_output share one layout."""
    if x.device.type != "cpu" or w.shape[2:] != (1, 1) or any(padding) or x.dim() != 4:
        return False
    if grad_out.numel() // max(grad_out.shape[1], 1) > _POINTWISE_GEMM_MAX_POSITIONS:
        return False
    if x.is_contiguous() and grad_out.is_contiguous():
        return True
    cl = torch.channels_last
    return x.is_contiguous(memory_format=cl) and grad_out.is_contiguous(memory_format=cl)


def _pointwise_backward(grad_out, x, w, idx, stride, needs):
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
    w2 = w.reshape(c_out, c_in)
    gi = gw = gb = None
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # channels_last: every tensor is an [positions, channels] matrix
        go_k = grad_out.permute(0, 2, 3, 1).reshape(-1, c_out).index_select(1, idx)  # [M, K]
        if need_w:
            xs = x.permute(0, 2, 3, 1)[:, ::sh, ::sw, :].reshape(-1, c_in)  # [M, C_in]
            gw = w2.new_zeros(c_out, c_in).index_copy_(0, idx, go_k.t() @ xs).view(w.shape)
        if need_x:
            gi_s = go_k @ w2.index_select(0, idx)  # [M, C_in]
            ho, wo = grad_out.shape[2], grad_out.shape[3]
            if sh == sw == 1:
                gi = gi_s.view(n, ho, wo, c_in).permute(0, 3, 1, 2)
            else:
                gi = torch.zeros_like(x, memory_format=torch.channels_last)
                gi.permute(0, 2, 3, 1)[:, ::sh, ::sw, :] = gi_s.view(n, ho, wo, c_in)
        if need_b:
            gb = go_k.new_zeros(c_out).index_copy_(0, idx, go_k.sum(0))
        return gi, gw, gb
    # contiguous NCHW: batched [channels, positions] matrices
    go_k = grad_out.reshape(n, c_out, -1).index_select(1, idx)  # [N, K, L]
    if need_w:
        xs = x[:, :, ::sh, ::sw].reshape(n, c_in, -1)  # [N, C_in, L]
        gw_k = torch.bmm(go_k, xs.transpose(1, 2)).sum(0)
        gw = w2.new_zeros(c_out, c_in).index_copy_(0, idx, gw_k).view(w.shape)
    if need_x:
        gi_s = torch.matmul(w2.index_select(0, idx).t(), go_k)  # [N, C_in, L]
        ho, wo = grad_out.shape[2], grad_out.shape[3]
        if sh == sw == 1:
            gi = gi_s.view(n, c_in, ho, wo)
        else:
            gi = x.new_zeros(n, c_in, h, wd)
            gi[:, :, ::sh, ::sw] = gi_s.view(n, c_in, ho, wo)
    if need_b:
        gb = go_k.new_zeros(c_out).index_copy_(0, idx, go_k.sum((0, 2)))
    return gi, gw, gb


def _depthwise_backward(grad_out, x, w, scores, stride, padding, dilation, drop_rate, selection,
                        needs):  # fmt: skip
    """Backward of a conv with one output channel per group on the kept groups only."""
    need_x, need_w, need_b = needs
    c_out, cin_g = w.shape[0], w.shape[1]
    k = sel.num_kept(c_out, drop_rate)
    idx = sel.select(scores, k, selection)
    in_idx = (idx.unsqueeze(1) * cin_g + torch.arange(cin_g, device=idx.device)).reshape(-1)
    go_k = sel.gather_channels(grad_out, idx)
    w_k = sel.gather_rows(w, idx)
    x_k = sel.gather_channels(x, in_idx)
    gi_k, gw_k, gb_k = torch.ops.aten.convolution_backward(
        go_k, x_k, w_k, [k], stride, padding, dilation, False, [0, 0], k, [need_x, need_w, need_b]
    )
    gi = gw = gb = None
    if need_x:
        gi = torch.zeros_like(x).index_copy_(1, in_idx, gi_k)
    if need_w:
        gw = torch.zeros_like(w).index_copy_(0, idx, gw_k)
    if need_b:
        gb = gb_k.new_zeros(c_out).index_copy_(0, idx, gb_k)
    return gi, gw, gb


class SparseConv2d(sel.SparseSettings, nn.Conv2d):
    """Drop-in ``nn.Conv2d`` with ssProp's sparse backward (see the module docstring).

    Extra keyword-only settings: ``drop_rate`` in [0, 1) (fraction of output channels whose
    gradient is dropped; settable at any time, e.g. by a scheduler), ``selection`` (``"topk"``
    or ``"random"``), ``dims`` (``"channel"`` saves compute; ``"spatial"``/``"all"`` only mask).
    ``target_drop_rate`` is the rate this layer was configured with (schedulers scale it).
    ``state_dict`` keys are exactly ``nn.Conv2d``'s.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        drop_rate: float = 0.0,
        selection: str = "topk",
        dims: str = "channel",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._configure_sparse(drop_rate, selection, dims)

    def forward(self, input: Tensor) -> Tensor:
        if self._native_path(input):
            return self._conv_forward(input, self.weight, self.bias)
        return self._sparse_forward(input)

    def _sparse_forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = [0, 0]
        elif self.padding == "valid":
            padding = [0, 0]
        elif self.padding == "same":
            x, padding = _same_padding(x, self.kernel_size, self.dilation)
        else:
            padding = list(self.padding)
        return _SparseConv2dFn.apply(
            x, self.weight, self.bias, list(self.stride), padding, list(self.dilation),
            self.groups, self._drop_rate, self.selection, self.dims,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, drop_rate={self._drop_rate}, "
            f"selection={self.selection!r}, dims={self.dims!r}"
        )

"""``SparseConv2d``: an ``nn.Conv2d`` whose backward runs on the most important output channels.

Forward is ``nn.Conv2d``'s (bit-identical output). In training, with ``drop_rate > 0`` and a
gradient to compute, the backward ranks output channels by mean |grad_output| over (N, H, W)
(float32 accumulation), keeps ``K = max(1, floor((1 - drop_rate) * C_out))`` of them (the paper's
reference code floors), gathers those channels of grad_output once and calls
``aten.convolution_backward`` on the shrunk grad_output and weight slices: grad_input, the kept
rows of grad_weight and the kept entries of grad_bias. Dropped rows/entries are zero; nothing
is rescaled. The result equals the dense backward with the dropped channels of grad_output set
to zero. The selection and the shrunk backward are ``torch.library`` custom ops
(``ssprop.ops``); their implementations are in ``ssprop.backward`` (CPU 1x1 GEMM path,
depthwise path, tensor-core padding) and ``ssprop.select`` / ``ssprop.kernels`` (aten or Triton
selection, ``backend=``).

Groups: with ``C_out / groups > 1`` channels per group, K is taken *per group* (K =
``num_kept(C_out / groups)``), so the shrunk convolution is still grouped. Depthwise-like
layers (one output channel per group) rank all channels globally and run the shrunk convolution
on the kept groups only (gathering their input channels), so they save compute too.

``dims="spatial"`` / ``"all"`` (paper's sensitivity study) only mask grad_output and run the
dense backward: they save **no** compute.

With ``drop_rate == 0``, in eval mode, when no gradient is needed or when the layer has fewer
than ``min_channels`` output channels, the module takes ``nn.Conv2d``'s native path (no custom
autograd Function, bit-identical gradients).

``torch.compile(fullgraph=True)``: the forward is ``F.conv2d`` inside an autograd Function
whose backward is two custom ops with fake kernels, so dynamo captures the whole step with no
graph break. It guards on ``drop_rate`` (a Python float, so K is a constant of the graph): a
bar schedule (0 / D) compiles one graph per phase and reuses them (each distinct K is one more
graph: a linear/cosine ramp with many rates can reach dynamo's recompile limit). With
``reselect_every > 1`` the selection op mutates the layer's index cache and CPU counter
(declared in ``mutates_args``, so the compiled step stays exact); inductor's CUDA graphs skip a
graph with a CPU input or run that op outside them (graph partitioning): prefer
``reselect_every=1`` with ``mode="reduce-overhead"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssprop import ops
from ssprop import select as sel
from ssprop.settings import SparseSettings


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
    """Native conv forward; backward on the kept output channels only (see module docstring).

    Saves ``x`` and ``weight`` as they are (no cast copies: under autocast the backward casts
    the kept weight rows only).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, conf, cache, state):
        stride, padding, dilation, groups = conf[:4]
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(x, weight, cache, state)
        ctx.conf = conf
        ctx.cdt = out.dtype  # the compute dtype (differs from the inputs' under autocast)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w, cache, state = ctx.saved_tensors
        stride, padding, dilation, groups, drop_rate, selection, dims, backend, every = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.bias_dtype is not None
        if grad_out.dtype != ctx.cdt:
            grad_out = grad_out.to(ctx.cdt)
        if dims != "channel":
            gi, gw, gb = _masked_backward(
                grad_out, x, w, conf=ctx.conf, needs=(need_x, need_w, need_b)
            )
        else:
            c_out = w.shape[0]
            if groups > 1 and c_out == groups:  # depthwise-like: rank across the layer
                k, sel_groups = sel.num_kept(c_out, drop_rate), 1
            else:
                k, sel_groups = sel.num_kept(c_out // groups, drop_rate), groups
            reselect = None if cache is None else (every, cache, state)
            idx = ops.select(grad_out, k, sel_groups, selection, backend, reselect)
            gi, gw, gb = ops.conv2d(
                grad_out, x, w, idx, stride, padding, dilation, groups, (need_x, need_w, need_b),
                backend,
            )  # fmt: skip
        if gb is not None and gb.dtype != ctx.bias_dtype:
            gb = gb.to(ctx.bias_dtype)
        return gi, gw, gb, None, None, None


def _masked_backward(grad_out, x, w, *, conf, needs):
    """``dims="spatial"``/``"all"``: mask grad_output, then the dense backward (no saving)."""
    stride, padding, dilation, groups, drop_rate, selection, dims = conf[:7]
    cdt = grad_out.dtype
    masked = sel.mask_grad(grad_out, drop_rate, dims, selection)
    gi, gw, gb = torch.ops.aten.convolution_backward(
        masked, x.to(cdt), w.to(cdt), [w.shape[0]], stride, padding, dilation, False, [0, 0],
        groups, list(needs),
    )  # fmt: skip
    gi = gi.to(x.dtype) if gi is not None else None
    gw = gw.to(w.dtype) if gw is not None else None
    gb = gb.to(w.dtype) if gb is not None else None
    return gi, gw, gb


class SparseConv2d(SparseSettings, nn.Conv2d):
    """Drop-in ``nn.Conv2d`` with ssProp's sparse backward (see the module docstring).

    Extra keyword-only settings (``ssprop.settings``): ``drop_rate`` in [0, 1) (fraction of
    output channels whose gradient is dropped; settable at any time, e.g. by a scheduler),
    ``selection`` (``"topk"`` or ``"random"``), ``dims`` (``"channel"`` saves compute;
    ``"spatial"``/``"all"`` only mask), ``backend`` (``"auto"``/``"aten"``/``"triton"``), and
    the opt-in variants ``reselect_every`` (reuse a ranking for N backward passes) and
    ``min_channels`` (stay dense below M output channels). ``target_drop_rate`` is the rate
    this layer was configured with (schedulers scale it). ``state_dict`` keys are exactly
    ``nn.Conv2d``'s.
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
        backend: str = "auto",
        reselect_every: int = 1,
        min_channels: int = 0,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self._configure_sparse(
            drop_rate, selection, dims, backend=backend, reselect_every=reselect_every,
            min_channels=min_channels,
        )  # fmt: skip

    def _sparse_width(self) -> int:
        return self.out_channels

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
        conf = (
            list(self.stride), padding, list(self.dilation), self.groups, self._drop_rate,
            self.selection, self.dims, self.backend, self._reselect_every,
        )  # fmt: skip
        reselect = self._reselect_args()
        cache, state = (None, None) if reselect is None else reselect[1:]
        return _SparseConv2dFn.apply(x, self.weight, self.bias, conf, cache, state)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._sparse_repr()}"

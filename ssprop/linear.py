"""``SparseLinear``: an ``nn.Linear`` whose backward runs on the most important output features.

The paper names MLPs/Transformers as future work; this applies the same rule to ``nn.Linear``:
importance of output feature j = mean |grad_output[..., j]| over every leading dim (float32
accumulation), keep ``K = max(1, floor((1 - drop_rate) * out_features))`` features, and compute
grad_input, the kept rows of grad_weight and the kept entries of grad_bias from the shrunk
``[M, K]`` gradient (M = product of leading dims). Dropped rows/entries are zero; no rescaling.
Forward is ``nn.Linear``'s; with ``drop_rate == 0``, in eval mode, without grad or below
``min_channels`` output features the native path is taken. The backward is the
``ssprop::select_channels`` and ``ssprop::linear_backward`` custom ops (``ssprop.ops``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssprop import ops
from ssprop import select as sel
from ssprop.settings import SparseSettings


class _SparseLinearFn(torch.autograd.Function):
    """Native linear forward; backward on the kept output features (``ssprop.ops``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, conf, cache, state):
        out = F.linear(x, weight, bias)
        ctx.save_for_backward(x, weight, cache, state)
        ctx.conf = conf
        ctx.cdt = out.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w, cache, state = ctx.saved_tensors
        drop_rate, selection, backend, every = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.bias_dtype is not None
        if grad_out.dtype != ctx.cdt:
            grad_out = grad_out.to(ctx.cdt)
        out_f = w.shape[0]
        g2 = grad_out.reshape(-1, out_f)
        reselect = None if cache is None else (every, cache, state)
        idx = ops.select(g2, sel.num_kept(out_f, drop_rate), 1, selection, backend, reselect)
        gi, gw, gb = ops.linear(grad_out, x, w, idx, (need_x, need_w, need_b), backend)
        if gb is not None and gb.dtype != ctx.bias_dtype:
            gb = gb.to(ctx.bias_dtype)
        return gi, gw, gb, None, None, None


class SparseLinear(SparseSettings, nn.Linear):
    """Drop-in ``nn.Linear`` with ssProp's sparse backward over output features.

    Keyword-only ``drop_rate`` in [0, 1) (settable), ``selection`` (``"topk"``/``"random"``),
    ``backend``, ``reselect_every`` and ``min_channels`` (here: output features), as for
    ``SparseConv2d``; ``target_drop_rate`` is the configured rate; ``dims`` is always
    ``"channel"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        drop_rate: float = 0.0,
        selection: str = "topk",
        backend: str = "auto",
        reselect_every: int = 1,
        min_channels: int = 0,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._configure_sparse(
            drop_rate, selection, "channel", backend=backend, reselect_every=reselect_every,
            min_channels=min_channels,
        )  # fmt: skip

    def _sparse_width(self) -> int:
        return self.out_features

    def _configure_sparse(
        self, drop_rate: float, selection: str, dims: str = "channel", **kw
    ) -> None:
        if dims != "channel":
            raise ValueError(f"SparseLinear supports only dims='channel'; got {dims!r}")
        super()._configure_sparse(drop_rate, selection, dims, **kw)

    def forward(self, input: Tensor) -> Tensor:
        if self._native_path(input):
            return F.linear(input, self.weight, self.bias)
        conf = (self._drop_rate, self.selection, self.backend, self._reselect_every)
        reselect = self._reselect_args()
        cache, state = (None, None) if reselect is None else reselect[1:]
        return _SparseLinearFn.apply(input, self.weight, self.bias, conf, cache, state)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._sparse_repr(show_dims=False)}"

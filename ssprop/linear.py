"""``SparseLinear``: an ``nn.Linear`` whose backward runs on the most important output features.

The paper names MLPs/Transformers as future work; this applies the same rule to ``nn.Linear``:
importance of output feature j = mean |grad_output[..., j]| over every leading dim (float32
accumulation), keep ``K = max(1, floor((1 - drop_rate) * out_features))`` features, and compute
grad_input, the kept rows of grad_weight and the kept entries of grad_bias from the shrunk
``[M, K]`` gradient (M = product of leading dims). Dropped rows/entries are zero; no rescaling.
Forward is ``nn.Linear``'s; with ``drop_rate == 0``, in eval mode or without grad the native
path is taken.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssprop import select as sel


class _SparseLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, drop_rate, selection):
        out = F.linear(x, weight, bias)
        cdt = out.dtype
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.save_for_backward(x if x.dtype == cdt else x.to(cdt), weight.to(cdt))
        ctx.conf = (drop_rate, selection)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        drop_rate, selection = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and ctx.has_bias
        if grad_out.dtype != x.dtype:
            grad_out = grad_out.to(x.dtype)
        out_f, in_f = w.shape
        g2 = grad_out.reshape(-1, out_f)
        scores = sel.channel_importance(g2, 1)
        idx = sel.select(scores, sel.num_kept(out_f, drop_rate), selection)
        g_k = g2.index_select(1, idx)  # [M, K]
        gi = gw = gb = None
        x_dt, w_dt, b_dt = ctx.dtypes
        if need_x:
            gi = (g_k @ w.index_select(0, idx)).reshape(*grad_out.shape[:-1], in_f).to(x_dt)
        if need_w:
            gw_k = g_k.t() @ x.reshape(-1, in_f)
            gw = torch.zeros_like(w).index_copy_(0, idx, gw_k).to(w_dt)
        if need_b:
            gb = g_k.new_zeros(out_f).index_copy_(0, idx, g_k.sum(0)).to(b_dt)
        return gi, gw, gb, None, None


class SparseLinear(sel.SparseSettings, nn.Linear):
    """Drop-in ``nn.Linear`` with ssProp's sparse backward over output features.

    Keyword-only ``drop_rate`` in [0, 1) (settable) and ``selection`` (``"topk"``/``"random"``);
    ``target_drop_rate`` is the configured rate; ``dims`` is always ``"channel"``.
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
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._configure_sparse(drop_rate, selection, "channel")

    def _configure_sparse(self, drop_rate: float, selection: str, dims: str = "channel") -> None:
        if dims != "channel":
            raise ValueError(f"SparseLinear supports only dims='channel'; got {dims!r}")
        super()._configure_sparse(drop_rate, selection, dims)

    def forward(self, input: Tensor) -> Tensor:
        if self._native_path(input):
            return F.linear(input, self.weight, self.bias)
        return _SparseLinearFn.apply(input, self.weight, self.bias, self._drop_rate, self.selection)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, drop_rate={self._drop_rate}, selection={self.selection!r}"

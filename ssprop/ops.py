"""ssProp's backward as ``torch.library`` custom ops, so ``torch.compile`` captures it whole.

Four ops, each with a fake (meta) kernel whose output shapes depend only on the inputs' shapes
and on Python ints (K comes from the drop rate, so one graph serves a drop-rate phase):

* ``ssprop::select_channels(grad, k, groups, selection, backend) -> idx``: ``groups * k`` kept
  output channels (dim 1 of a 4-D gradient, the last dim of a 2-D one), top-K of the
  per-channel ``sum |grad|`` within each group, or random.
* ``ssprop::select_channels_cached(..., every, cache, state) -> idx``: the same, ranking only
  when the cached selection is absent, of another K, or ``every`` backward passes old; it
  mutates ``cache`` (the kept indices, on the gradient's device) and ``state`` (CPU int64
  ``[passes since ranking, cached K]``), declared in ``mutates_args``.
* ``ssprop::conv2d_backward(grad, x, weight, idx, stride, padding, dilation, groups,
  need_input, need_weight, need_bias, backend) -> (grad_input, grad_weight, grad_bias)``.
* ``ssprop::linear_backward(grad, x, weight, idx, need_input, need_weight, need_bias,
  backend) -> (grad_input, grad_weight, grad_bias)``.

A gradient that is not needed comes back as an empty tensor (custom ops return no ``None``).
``backend`` is ``"auto"``, ``"aten"`` or ``"triton"``, resolved on the gradient's device.

Eager mode calls the same Python implementations directly (``select``/``conv2d``/``linear``
below), without the dispatcher round trip; under ``torch.compile`` (dynamo tracing) the ops are
called, so the graph holds one opaque node per op and never breaks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ssprop import backward as bwd
from ssprop import kernels
from ssprop import select as sel

Reselect = tuple[int, Tensor, Tensor] | None


def _select_impl(grad: Tensor, k: int, groups: int, selection: str, backend: str) -> Tensor:
    c = grad.shape[1]
    per_group = c // groups
    if selection == "random":
        idx = sel.random_select((groups, per_group), k, grad.device)
    else:
        backend = kernels.resolve_backend(backend, grad.device)
        scores = sel.scores(grad, 1, backend)
        idx = sel.select(scores.view(groups, per_group), k, "topk")
    return sel.grouped_offsets(idx, groups, per_group)


@torch.library.custom_op("ssprop::select_channels", mutates_args=())
def _select_op(grad: Tensor, k: int, groups: int, selection: str, backend: str) -> Tensor:
    return _select_impl(grad, k, groups, selection, backend)


@_select_op.register_fake
def _(grad, k, groups, selection, backend):
    return grad.new_empty(groups * k, dtype=torch.int64)


def _select_cached_impl(
    grad: Tensor, k: int, groups: int, selection: str, backend: str, every: int,
    cache: Tensor, state: Tensor,
) -> Tensor:  # fmt: skip
    total = groups * k
    since, cached = int(state[0]), int(state[1])
    if cached == total and since < every:
        state[0] = since + 1
        return cache[:total].clone()
    idx = _select_impl(grad, k, groups, selection, backend)
    cache[:total].copy_(idx)
    state[0] = 1
    state[1] = total
    return idx


@torch.library.custom_op("ssprop::select_channels_cached", mutates_args=("cache", "state"))
def _select_cached_op(
    grad: Tensor, k: int, groups: int, selection: str, backend: str, every: int,
    cache: Tensor, state: Tensor,
) -> Tensor:  # fmt: skip
    return _select_cached_impl(grad, k, groups, selection, backend, every, cache, state)


@_select_cached_op.register_fake
def _(grad, k, groups, selection, backend, every, cache, state):
    return grad.new_empty(groups * k, dtype=torch.int64)


def _filled(grads: bwd.Grads, x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    gi, gw, gb = grads
    empty = weight.new_empty(0)
    return (
        x.new_empty(0) if gi is None else gi,
        empty if gw is None else gw,
        empty if gb is None else gb,
    )


@torch.library.custom_op("ssprop::conv2d_backward", mutates_args=())
def _conv2d_op(
    grad: Tensor, x: Tensor, weight: Tensor, idx: Tensor, stride: list[int],
    padding: list[int], dilation: list[int], groups: int, need_input: bool, need_weight: bool,
    need_bias: bool, backend: str,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    needs = (need_input, need_weight, need_bias)
    out = conv2d(grad, x, weight, idx, stride, padding, dilation, groups, needs, backend)
    gi, gw, gb = _filled(out, x, weight)
    if gi.numel():
        gi = _with_strides(gi, _grad_input_like(x, weight))
    return gi, gw, gb


def _grad_input_like(x: Tensor, weight: Tensor) -> Tensor:
    """A meta tensor laid out as the conv backward lays out grad_input: channels_last when the
    input or the weight is (as cuDNN and oneDNN choose)."""
    cl = torch.channels_last
    fmt = cl if (bwd._channels_last(x) or bwd._channels_last(weight)) else torch.contiguous_format
    return torch.empty_like(x, device="meta", memory_format=fmt)


def _with_strides(t: Tensor, like: Tensor) -> Tensor:
    """``t`` with ``like``'s strides (a copy only where they differ, e.g. size-1 dims)."""
    if t.stride() == like.stride():
        return t
    return torch.empty_strided(like.shape, like.stride(), dtype=t.dtype, device=t.device).copy_(t)


@_conv2d_op.register_fake
def _(grad, x, weight, idx, stride, padding, dilation, groups, need_input, need_weight,
      need_bias, backend):  # fmt: skip
    gi = torch.empty_like(_grad_input_like(x, weight), device=x.device) if need_input else None
    gw = torch.empty_like(weight) if need_weight else None
    gb = weight.new_empty(weight.shape[0]) if need_bias else None
    return _filled((gi, gw, gb), x, weight)


@torch.library.custom_op("ssprop::linear_backward", mutates_args=())
def _linear_op(
    grad: Tensor, x: Tensor, weight: Tensor, idx: Tensor, need_input: bool, need_weight: bool,
    need_bias: bool, backend: str,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    out = linear(grad, x, weight, idx, (need_input, need_weight, need_bias), backend)
    return _filled(out, x, weight)


@_linear_op.register_fake
def _(grad, x, weight, idx, need_input, need_weight, need_bias, backend):
    gi = x.new_empty(x.shape) if need_input else None
    gw = torch.empty_like(weight) if need_weight else None
    gb = weight.new_empty(weight.shape[0]) if need_bias else None
    return _filled((gi, gw, gb), x, weight)


# -- what the autograd Functions call: the op under torch.compile, the Python impl in eager ---
def select(
    grad: Tensor, k: int, groups: int, selection: str, backend: str, reselect: Reselect
) -> Tensor:
    """Kept channel indices (see ``ssprop::select_channels[_cached]``)."""
    compiling = torch.compiler.is_compiling()
    if reselect is None:
        fn = torch.ops.ssprop.select_channels if compiling else _select_impl
        return fn(grad, k, groups, selection, backend)
    every, cache, state = reselect
    fn = torch.ops.ssprop.select_channels_cached if compiling else _select_cached_impl
    return fn(grad, k, groups, selection, backend, every, cache, state)


def conv2d(
    grad: Tensor, x: Tensor, weight: Tensor, idx: Tensor, stride: list[int], padding: list[int],
    dilation: list[int], groups: int, needs: bwd.Needs, backend: str,
) -> bwd.Grads:  # fmt: skip
    """Sparse conv2d backward on the kept channels (see ``ssprop.backward.conv2d``)."""
    if torch.compiler.is_compiling():
        gi, gw, gb = torch.ops.ssprop.conv2d_backward(
            grad, x, weight, idx, stride, padding, dilation, groups, *needs, backend
        )
        return tuple(g if need else None for g, need in zip((gi, gw, gb), needs, strict=True))
    backend = kernels.resolve_backend(backend, grad.device)
    return bwd.conv2d(grad, x, weight, idx, stride, padding, dilation, groups, needs, backend)


def linear(
    grad: Tensor, x: Tensor, weight: Tensor, idx: Tensor, needs: bwd.Needs, backend: str
) -> bwd.Grads:
    """Sparse linear backward on the kept features (see ``ssprop.backward.linear``)."""
    if torch.compiler.is_compiling():
        gi, gw, gb = torch.ops.ssprop.linear_backward(grad, x, weight, idx, *needs, backend)
        return tuple(g if need else None for g, need in zip((gi, gw, gb), needs, strict=True))
    return bwd.linear(grad, x, weight, idx, needs, kernels.resolve_backend(backend, grad.device))

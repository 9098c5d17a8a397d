"""SparseLinear: gradient equivalence to the masked-dense reference over output features."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssprop.linear import SparseLinear


def _pair(drop: float, bias: bool = True, dtype=torch.float64, selection="topk"):
    torch.manual_seed(0)
    sparse = SparseLinear(6, 10, bias=bias, dtype=dtype, drop_rate=drop, selection=selection)
    dense = nn.Linear(6, 10, bias=bias, dtype=dtype)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def _mask(g: torch.Tensor, drop: float) -> torch.Tensor:
    imp = g.double().abs().reshape(-1, g.shape[-1]).mean(0)
    k = max(1, int((1 - drop) * g.shape[-1] + 1e-9))
    mask = torch.zeros(g.shape[-1], dtype=g.dtype)
    mask[imp.topk(k).indices] = 1
    return mask


def _run(module, x, g):
    xi = x.detach().clone().requires_grad_()
    y = module(xi)
    y.backward(g)
    return y, xi.grad, module.weight.grad, None if module.bias is None else module.bias.grad


@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 6), (2, 2, 2, 6)], ids=["2d", "3d", "4d"])
@pytest.mark.parametrize("bias", [True, False])
def test_float64_grads_equal_dense_backward_with_dropped_features_zeroed(shape, bias):
    sparse, dense = _pair(0.7, bias)
    x = torch.randn(*shape, dtype=torch.float64)
    g = torch.randn(*shape[:-1], 10, dtype=torch.float64)
    ys, gx, gw, gb = _run(sparse, x, g)
    yd, gxd, gwd, gbd = _run(dense, x, g * _mask(g, 0.7))
    assert torch.equal(ys, yd)
    torch.testing.assert_close(gx, gxd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gwd, rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(gb, gbd, rtol=1e-12, atol=1e-12)
    assert int(torch.count_nonzero(gw.abs().sum(1))) == 3


def test_drop_zero_gives_bit_identical_grads_to_nn_linear():
    sparse, dense = _pair(0.0, dtype=torch.float32)
    x = torch.randn(4, 6)
    g = torch.randn(4, 10)
    for a, b in zip(_run(sparse, x, g), _run(dense, x, g), strict=True):
        assert torch.equal(a, b)


def test_cpu_autocast_bf16_returns_param_dtype_grads_close_to_reference():
    sparse, dense = _pair(0.5, dtype=torch.float32)
    x = torch.randn(4, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ys = sparse(x.requires_grad_())
        yd = dense(x)
    assert torch.equal(ys, yd)
    g = torch.randn_like(ys)
    ys.backward(g)
    yd.backward(g * _mask(g, 0.5))
    assert sparse.weight.grad.dtype == torch.float32
    torch.testing.assert_close(sparse.weight.grad, dense.weight.grad, rtol=2e-2, atol=2e-2)


def test_linear_backward_flops_fall_with_drop_rate():
    x = torch.randn(32, 6, requires_grad=True)
    counts = []
    for drop in (0.0, 0.8):
        layer, _ = _pair(drop, dtype=torch.float32)
        y = layer(x)
        with FlopCounterMode(display=False) as counter:
            y.sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[1] < 0.5 * counts[0]


def test_random_selection_keeps_exactly_k_features_and_bad_args_raise():
    layer, _ = _pair(0.8, selection="random")
    layer(torch.randn(3, 6, dtype=torch.float64)).sum().backward()
    assert int(torch.count_nonzero(layer.weight.grad.abs().sum(1))) == 2
    with pytest.raises(ValueError, match="drop_rate"):
        SparseLinear(2, 2, drop_rate=1.0)
    with pytest.raises(ValueError, match="selection"):
        SparseLinear(2, 2, selection="foo")
    assert isinstance(layer, nn.Linear)

"""ssProp's speed paths keep the specified gradients: the 1x1 GEMM backward; torch.compile
keeps the sparse backward (no silent fallback to dense)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ssprop
from ssprop import select as sel
from ssprop.conv import SparseConv2d


def _kept_mask(grad: torch.Tensor, drop: float) -> torch.Tensor:
    """Reference kept-channel mask (groups=1): top-K of mean |grad| in float64."""
    c = grad.shape[1]
    k = max(1, int((1 - drop) * c + 1e-9))
    mask = torch.zeros(c, dtype=grad.dtype)
    mask[grad.double().abs().mean(dim=(0, 2, 3)).topk(k).indices] = 1
    return mask.view(1, -1, 1, 1)


@pytest.mark.parametrize("stride", [1, 2, (2, 3)], ids=["s1", "s2", "s23"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_pointwise_gemm_backward_equals_masked_dense_backward(stride, bias, channels_last):
    torch.manual_seed(0)
    cfg = dict(in_channels=6, out_channels=10, kernel_size=1, stride=stride, bias=bias)
    sparse = SparseConv2d(**cfg, dtype=torch.float64, drop_rate=0.7)
    dense = nn.Conv2d(**cfg, dtype=torch.float64)
    dense.load_state_dict(sparse.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sparse.to(memory_format=fmt)
    dense.to(memory_format=fmt)
    x = torch.randn(3, 6, 9, 7, dtype=torch.float64).to(memory_format=fmt)
    with torch.no_grad():
        g = torch.randn_like(dense(x))
    grads = []
    for module, go in ((sparse, g), (dense, g * _kept_mask(g, 0.7))):
        xi = x.detach().clone().requires_grad_()
        y = module(xi)
        y.backward(go)
        grads.append((y, xi.grad, module.weight.grad, None if not bias else module.bias.grad))
    (ys, gxs, gws, gbs), (yd, gxd, gwd, gbd) = grads
    assert torch.equal(ys, yd)
    tol = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gxs, gxd, **tol)
    torch.testing.assert_close(gws, gwd, **tol)
    if bias:
        torch.testing.assert_close(gbs, gbd, **tol)
    assert gxs.shape == x.shape and gws.shape == sparse.weight.shape
    if channels_last:
        assert gxs.is_contiguous(memory_format=torch.channels_last)


def test_compiled_bar_schedule_keeps_sparse_backward_and_compiles_two_graphs():
    dynamo = pytest.importorskip("torch._dynamo")
    from torch._dynamo.testing import CompileCounterWithBackend

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 10, 3, padding=1), nn.ReLU(), nn.Conv2d(10, 10, 1))
    ssprop.convert(model, 0.5)
    counter = CompileCounterWithBackend("aot_eager")
    dynamo.reset()
    compiled = torch.compile(model, backend=counter)
    x = torch.randn(2, 3, 8, 8)
    frames_after_both_phases = None
    for step in range(4):  # bar schedule with period 2 one-step epochs: 0, 0.5, 0, 0.5
        if step == 2:
            frames_after_both_phases = counter.frame_count
        rate = 0.0 if step % 2 == 0 else 0.5
        ssprop.set_drop_rate(model, rate)
        model.zero_grad(set_to_none=True)
        compiled(x).square().sum().backward()
        for layer in (model[0], model[2]):
            rows = layer.weight.grad.flatten(1).abs().sum(1)
            expect = layer.out_channels if rate == 0 else sel.num_kept(layer.out_channels, rate)
            assert int((rows != 0).sum()) == expect  # dropped channels get exactly zero
    assert counter.frame_count == frames_after_both_phases  # no recompiles once both ran
    graphs_with_ops = [
        g for g in counter.graphs if any(n.op.startswith("call") for n in g.graph.nodes)
    ]
    assert (
        len(graphs_with_ops) == 2
    )  # one graph per phase (dense, sparse); dynamo may add an empty one
    dynamo.reset()

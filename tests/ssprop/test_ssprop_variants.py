"""Opt-in variants (reselect_every, min_channels) and the cheap paths that must not change the
result: random selection without importance, no cast copy of the weight saved in forward."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ssprop
from ssprop import select as sel
from ssprop.conv import SparseConv2d
from ssprop.linear import SparseLinear


def _grad_ranking(order: list[int], c: int = 8) -> torch.Tensor:
    """A grad_output [2, c, 4, 4] whose channel magnitudes rank as ``order`` (largest first)."""
    scale = torch.zeros(c, dtype=torch.float64)
    for rank, ch in enumerate(order):
        scale[ch] = 10.0 - rank
    return (torch.rand(2, c, 4, 4, dtype=torch.float64) + 1.0) * scale.view(1, -1, 1, 1)


def _kept(layer: nn.Module) -> set[int]:
    rows = layer.weight.grad.flatten(1).abs().sum(1)
    return set(torch.nonzero(rows).flatten().tolist())


def _step(layer: nn.Module, g: torch.Tensor, x: torch.Tensor) -> set[int]:
    layer.zero_grad(set_to_none=True)
    layer(x).backward(g)
    return _kept(layer)


def test_reselect_every_ranks_on_the_first_and_every_nth_backward():
    torch.manual_seed(0)
    layer = SparseConv2d(3, 8, 3, padding=1, dtype=torch.float64, drop_rate=0.75, reselect_every=3)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    orders = [[0, 1], [2, 3], [4, 5], [6, 7], [1, 3], [5, 7], [0, 2]]
    kept = [_step(layer, _grad_ranking(o + [c for c in range(8) if c not in o]), x) for o in orders]
    # ranks at backward 0, 3, 6; backward 1, 2, 4, 5 reuse the cached indices
    assert kept == [{0, 1}, {0, 1}, {0, 1}, {6, 7}, {6, 7}, {6, 7}, {0, 2}]


def test_stale_selection_still_equals_the_masked_dense_backward_of_the_cached_channels():
    torch.manual_seed(0)
    cfg = dict(in_channels=3, out_channels=8, kernel_size=3, padding=1)
    sparse = SparseConv2d(**cfg, dtype=torch.float64, drop_rate=0.75, reselect_every=2)
    dense = nn.Conv2d(**cfg, dtype=torch.float64)
    dense.load_state_dict(sparse.state_dict())
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    _step(sparse, _grad_ranking([4, 5, 0, 1, 2, 3, 6, 7]), x)  # ranks: keeps {4, 5}
    g = _grad_ranking([0, 1, 2, 3, 4, 5, 6, 7])  # reuse: still {4, 5}, not {0, 1}
    xs, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    sparse.zero_grad(set_to_none=True)
    sparse(xs).backward(g)
    mask = torch.zeros(1, 8, 1, 1, dtype=torch.float64)
    mask[0, [4, 5]] = 1
    dense(xd).backward(g * mask)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sparse.weight.grad, dense.weight.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad, rtol=1e-12, atol=1e-12)


def test_a_new_k_or_a_dense_phase_makes_the_next_backward_rank_afresh():
    layer = SparseConv2d(3, 8, 3, padding=1, dtype=torch.float64, drop_rate=0.75, reselect_every=10)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert _step(layer, _grad_ranking([0, 1, 2, 3, 4, 5, 6, 7]), x) == {0, 1}
    layer.drop_rate = 0.5  # K 2 -> 4: the cache cannot serve
    assert _step(layer, _grad_ranking([7, 6, 5, 4, 3, 2, 1, 0]), x) == {4, 5, 6, 7}
    layer.drop_rate = 0.0  # a dense phase (bar schedule) ...
    layer(x).sum().backward()
    layer.drop_rate = 0.5  # ... then the first sparse backward ranks
    assert _step(layer, _grad_ranking([0, 2, 4, 6, 1, 3, 5, 7]), x) == {0, 2, 4, 6}
    layer.eval()  # eval forwards do not touch the cache
    layer(x)
    layer.train()
    assert _step(layer, _grad_ranking([1, 3, 5, 7, 0, 2, 4, 6]), x) == {0, 2, 4, 6}


def test_reselect_state_stays_out_of_the_state_dict_and_follows_the_module():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(6, 5))
    keys = list(net.state_dict())
    params = list(net.parameters())
    ssprop.convert(net, 0.5, linear=True, reselect_every=4)
    assert list(net.state_dict()) == keys
    assert all(p is q for p, q in zip(net.parameters(), params, strict=True))
    assert "reselect_every=4" in repr(net[0]) and "reselect_every=4" in repr(net[1])
    cache = net[0]._ssprop_idx_cache
    assert cache.dtype == torch.int64 and cache.shape == (8,)
    net.double()
    assert net[0]._ssprop_idx_cache.dtype == torch.int64
    twin = copy.deepcopy(net)
    twin[0](torch.randn(1, 3, 5, 5, dtype=torch.float64)).sum().backward()
    assert int(twin[0]._reselect_state[1]) == 4 and int(net[0]._reselect_state[1]) == 0
    ssprop.revert(net)
    assert type(net[0]) is nn.Conv2d and not hasattr(net[0], "_ssprop_idx_cache")
    assert not hasattr(net[0], "_reselect_state") and list(net.state_dict()) == keys
    net[0].reselect_every = 1  # plain attribute on a plain layer: nothing breaks
    layer = SparseConv2d(3, 8, 3, reselect_every=3)
    layer.reselect_every = 1
    assert "_ssprop_idx_cache" not in dict(layer.named_buffers())


def test_min_channels_keeps_narrow_layers_on_the_native_path():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1))
    ssprop.convert(net, 0.75, min_channels=16)
    assert "min_channels=16" in repr(net[0])
    x = torch.randn(2, 3, 5, 5)
    y = net[0](x)
    assert type(y.grad_fn).__name__ == "ConvolutionBackward0"  # nn.Conv2d's own path
    assert type(net[1](y).grad_fn).__name__ != "ConvolutionBackward0"
    net(x).square().sum().backward()
    assert _kept(net[0]) == set(range(8))  # dense
    assert len(_kept(net[1])) == 4  # sparse: 4 of 16
    lin = SparseLinear(4, 6, drop_rate=0.5, min_channels=8)
    assert (
        type(lin(torch.randn(2, 4, requires_grad=True)).grad_fn).__name__
        != "_SparseLinearFnBackward"
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reselect_every": 0}, "reselect_every must be an integer >= 1"),
        ({"reselect_every": 2.0}, "reselect_every must be an integer >= 1"),
        ({"reselect_every": True}, "reselect_every must be an integer >= 1"),
        ({"min_channels": -1}, "min_channels must be an integer >= 0"),
        ({"min_channels": "64"}, "min_channels must be an integer >= 0"),
    ],
)
def test_variant_settings_are_validated_with_one_line_errors(kwargs, match):
    for make in (
        lambda: SparseConv2d(3, 4, 3, **kwargs),
        lambda: SparseLinear(3, 4, **kwargs),
        lambda: ssprop.convert(nn.Conv2d(3, 4, 3), 0.5, **kwargs),
    ):
        with pytest.raises(ValueError, match=match) as err:
            make()
        assert "\n" not in str(err.value)


def test_random_selection_never_computes_the_importance(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("importance computed for selection='random'")

    monkeypatch.setattr(sel, "scores", boom)
    layer = SparseConv2d(3, 10, 3, drop_rate=0.8, selection="random", dtype=torch.float64)
    layer(torch.randn(2, 3, 5, 5, dtype=torch.float64)).sum().backward()
    assert len(_kept(layer)) == 2
    lin = SparseLinear(3, 10, drop_rate=0.8, selection="random")
    lin(torch.randn(4, 3)).sum().backward()
    assert len(_kept(lin)) == 2


def test_autocast_forward_saves_the_weight_itself_not_a_cast_copy():
    layer = SparseConv2d(4, 8, 3, padding=1, drop_rate=0.5)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    saved_x, saved_w = y.grad_fn.saved_tensors[:2]
    assert saved_w.dtype == torch.float32 and saved_w.data_ptr() == layer.weight.data_ptr()
    assert saved_x.data_ptr() == x.data_ptr()
    y.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32

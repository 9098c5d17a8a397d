"""convert / revert / sparse_modules / set_drop_rate on small models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ssprop
from ssprop.conv import SparseConv2d
from ssprop.linear import SparseLinear


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.attn = nn.MultiheadAttention(8, 2)  # out_proj is a Linear subclass: left alone
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.body(self.stem(x)).mean((2, 3))
        return self.head(x)


def test_convert_swaps_convs_in_place_keeping_parameters_and_state_dict():
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = {name: p for name, p in net.named_parameters()}
    out = ssprop.convert(net, 0.8)
    assert out is net
    assert type(net.stem) is SparseConv2d and type(net.body[0]) is SparseConv2d
    assert isinstance(net.stem, nn.Conv2d)
    assert type(net.head) is nn.Linear  # linear=False by default
    assert type(net.attn.out_proj) is not SparseLinear
    assert net.stem.drop_rate == net.stem.target_drop_rate == 0.8
    assert list(net.state_dict()) == list(before)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    for name, p in net.named_parameters():
        assert p is params[name]
    names = [n for n, _ in ssprop.sparse_modules(net)]
    assert names == ["stem", "body.0"]


def test_revert_round_trip_gives_plain_layers_and_equal_state_dict():
    net = Net()
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    ssprop.convert(net, 0.5, linear=True)
    assert type(net.head) is SparseLinear
    ssprop.revert(net)
    assert type(net.stem) is nn.Conv2d and type(net.body[0]) is nn.Conv2d
    assert type(net.head) is nn.Linear
    assert not hasattr(net.stem, "target_drop_rate")
    assert ssprop.sparse_modules(net) == []
    for k, v in net.state_dict().items():
        assert torch.equal(v, sd[k])


def test_convert_keeps_device_dtype_training_flag_and_hooks():
    net = Net().double().eval()
    calls = []
    handle = net.body[0].register_forward_hook(lambda m, i, o: calls.append(type(m).__name__))
    ssprop.convert(net)
    assert not net.body[0].training and net.body[0].weight.dtype == torch.float64
    net(torch.randn(1, 3, 4, 4, dtype=torch.float64))
    assert calls == ["SparseConv2d"]
    handle.remove()
    net(torch.randn(1, 3, 4, 4, dtype=torch.float64))
    assert calls == ["SparseConv2d"]


def test_optimizer_built_before_convert_still_updates_the_layer():
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ssprop.convert(net, 0.5)
    w0 = net.body[0].weight.detach().clone()
    net(torch.randn(2, 3, 6, 6)).sum().backward()
    opt.step()
    assert not torch.equal(net.body[0].weight, w0)


def test_include_filter_keeps_stem_dense():
    net = ssprop.convert(Net(), 0.8, include=lambda name, m: name != "stem")
    assert type(net.stem) is nn.Conv2d and type(net.body[0]) is SparseConv2d


def test_per_layer_rates_by_dict_and_callable():
    net = ssprop.convert(Net(), 0.8, rates={"stem": 0.0, "body.0": 0.5})
    assert net.stem.target_drop_rate == 0.0 and net.body[0].target_drop_rate == 0.5
    net = ssprop.convert(Net(), 0.8, rates=lambda name, m: 0.3 if name == "stem" else None)
    assert net.stem.drop_rate == 0.3 and net.body[0].drop_rate == 0.8


def test_set_drop_rate_absolute_and_scaled_by_target():
    net = ssprop.convert(Net(), 0.8, rates={"stem": 0.0})
    assert ssprop.set_drop_rate(net, factor=0.5) == 2
    assert net.stem.drop_rate == 0.0 and net.body[0].drop_rate == pytest.approx(0.4)
    assert net.body[0].target_drop_rate == 0.8
    ssprop.set_drop_rate(net, 0.6)
    assert net.stem.drop_rate == 0.6 and net.body[0].drop_rate == 0.6
    with pytest.raises(ValueError, match="exactly one"):
        ssprop.set_drop_rate(net)
    with pytest.raises(ValueError, match="drop_rate"):
        ssprop.set_drop_rate(net, 1.0)


def test_convert_of_a_bare_conv_returns_the_sparse_layer():
    conv = nn.Conv2d(3, 4, 3)
    sparse = ssprop.convert(conv, 0.5)
    assert type(sparse) is SparseConv2d and sparse.weight is conv.weight
    assert type(ssprop.revert(sparse)) is nn.Conv2d


def test_already_sparse_layers_are_not_reconverted():
    net = ssprop.convert(Net(), 0.5)
    layer = net.body[0]
    ssprop.convert(net, 0.2)
    assert net.body[0] is layer and layer.drop_rate == 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"selection": "foo"}, "selection"),
        ({"dims": "x"}, "dims"),
        ({"rates": {"nope": 0.5}}, "no such layer: nope"),
        ({"rates": {"stem": 2.0}}, "drop_rate"),
    ],
)
def test_convert_rejects_bad_arguments_with_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        ssprop.convert(Net(), **kwargs)
    assert "\n" not in str(err.value)

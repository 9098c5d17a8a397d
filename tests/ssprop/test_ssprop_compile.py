"""torch.compile captures ssProp's training step whole: custom ops with fake kernels, no graph
break, gradients equal to eager, one graph per drop-rate phase; opcheck on every op."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ssprop
from ssprop import select as sel

dynamo = pytest.importorskip("torch._dynamo")


class Block(nn.Module):
    """A ResNet basic block with a 1x1 stride-2 downsample."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, 2, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


def tiny_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        Block(8, 16),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),  # depthwise
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def _grads(model: nn.Module, run, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(run(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def _pair(drop: float, **kw) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    eager = ssprop.convert(tiny_resnet().double(), drop, linear=True, **kw)
    return eager, copy.deepcopy(eager)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_fullgraph_aot_eager_step_has_no_graph_break_and_eager_gradients(channels_last):
    eager, compiled_model = _pair(0.5)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    eager.to(memory_format=fmt)
    compiled_model.to(memory_format=fmt)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64).to(memory_format=fmt)
    y = torch.randint(0, 10, (4,))
    dynamo.reset()
    dynamo.utils.counters.clear()
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    for _ in range(2):
        want = _grads(eager, eager, x, y)
        got = _grads(compiled_model, compiled, x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert not dynamo.utils.counters["graph_break"]
    sparse_conv = compiled_model[3].conv2
    kept_rows = int((sparse_conv.weight.grad.flatten(1).abs().sum(1) != 0).sum())
    assert kept_rows == sel.num_kept(16, 0.5)  # the compiled backward stayed sparse
    dynamo.reset()


def test_fullgraph_inductor_bar_schedule_compiles_two_graphs_and_reuses_them():
    from torch._dynamo.testing import CompileCounterWithBackend

    eager, compiled_model = _pair(0.5)
    counter = CompileCounterWithBackend("inductor")
    dynamo.reset()
    compiled = torch.compile(compiled_model, fullgraph=True, backend=counter)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (2,))
    sched = ssprop.schedulers.build(
        "bar", compiled_model, 0.5, total_steps=6, steps_per_epoch=1, period=2
    )
    frames = []
    for _ in range(6):  # rates 0, 0.5, 0, 0.5, 0, 0.5
        ssprop.set_drop_rate(eager, compiled_model[0].drop_rate)
        got = _grads(compiled_model, compiled, x, y)
        want = _grads(eager, eager, x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)
        frames.append(counter.frame_count)
        sched.step()
    assert frames[-1] == frames[1]  # both phases compiled once, then reused: no recompiles
    # one graph per phase (dense, sparse); dynamo may add an empty one when it restarts the
    # analysis of the sparse phase to specialize K
    with_ops = [g for g in counter.graphs if any(n.op.startswith("call") for n in g.graph.nodes)]
    assert len(with_ops) == 2
    assert not dynamo.utils.counters["graph_break"]
    dynamo.reset()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_reselect_every_reuses_the_cached_selection(backend):
    eager, compiled_model = _pair(0.5, reselect_every=3)
    dynamo.reset()
    dynamo.utils.counters.clear()
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    layer = compiled_model[3].conv2
    torch.manual_seed(1)
    y = torch.randint(0, 10, (4,))
    kept = []
    for step in range(7):
        x = torch.randn(4, 3, 8, 8, dtype=torch.float64)  # new data: a fresh ranking could differ
        want = _grads(eager, eager, x, y)
        got = _grads(compiled_model, compiled, x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
        kept.append(
            frozenset(torch.nonzero(layer.weight.grad.flatten(1).abs().sum(1)).flatten().tolist())
        )
        assert int(layer._reselect_state[0]) == step % 3 + 1
    assert kept[0] == kept[1] == kept[2] and kept[3] == kept[4] == kept[5]
    assert not dynamo.utils.counters["graph_break"]
    dynamo.reset()


def test_compiled_bar_schedule_with_reselect_every_matches_eager():
    """The dense phase's forward resets the cache (a mutation inside the dense graph)."""
    eager, compiled_model = _pair(0.5, reselect_every=4)
    dynamo.reset()
    dynamo.utils.counters.clear()
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    sched = ssprop.schedulers.build(
        "bar", compiled_model, 0.5, total_steps=8, steps_per_epoch=2, period=2
    )
    torch.manual_seed(2)
    y = torch.randint(0, 10, (4,))
    for _ in range(8):  # dense, dense, sparse, sparse, dense, dense, sparse, sparse
        ssprop.set_drop_rate(eager, compiled_model[0].drop_rate)
        x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
        want = _grads(eager, eager, x, y)
        got = _grads(compiled_model, compiled, x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
        state = compiled_model[3].conv2._reselect_state
        assert state.tolist() == eager[3].conv2._reselect_state.tolist()
        sched.step()
    assert int(state[0]) == 2  # the second sparse phase ranked afresh, then reused once
    assert not dynamo.utils.counters["graph_break"]
    dynamo.reset()


def test_fullgraph_under_cpu_autocast_matches_eager():
    torch.manual_seed(0)
    eager = ssprop.convert(tiny_resnet(), 0.5, linear=True).to(memory_format=torch.channels_last)
    compiled_model = copy.deepcopy(eager)
    x = torch.randn(4, 3, 8, 8).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (4,))
    dynamo.reset()
    dynamo.utils.counters.clear()
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _grads(eager, eager, x, y)
        got = _grads(compiled_model, compiled, x, y)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-3)
    assert not dynamo.utils.counters["graph_break"]
    dynamo.reset()


# -- opcheck: schema, fake kernel, autograd registration, dispatch consistency ------------------
def _conv_args(groups: int, c_out: int, channels_last: bool, needs: tuple[bool, bool, bool]):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64).to(memory_format=fmt)
    w = torch.randn(c_out, 8 // groups, 3, 3, dtype=torch.float64).to(memory_format=fmt)
    g = torch.randn(2, c_out, 4, 3, dtype=torch.float64).to(memory_format=fmt)
    per_group = c_out // groups if c_out != groups else c_out
    k = sel.num_kept(per_group, 0.5)
    sel_groups = 1 if c_out == groups else groups
    idx = torch.ops.ssprop.select_channels(g, k, sel_groups, "topk", "aten")
    return (g, x, w, idx, [1, 1], [0, 0], [1, 1], groups, *needs, "aten")


@pytest.mark.parametrize(
    "groups,c_out", [(1, 6), (2, 6), (8, 8)], ids=["dense", "grouped", "depthwise"]
)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("needs", [(True, True, True), (False, True, False)], ids=["all", "w"])
def test_opcheck_conv2d_backward(groups, c_out, channels_last, needs):
    args = _conv_args(groups, c_out, channels_last, needs)
    torch.library.opcheck(torch.ops.ssprop.conv2d_backward, args)


def test_opcheck_selection_and_linear_ops():
    torch.manual_seed(0)
    g4 = torch.randn(2, 6, 4, 4)
    torch.library.opcheck(torch.ops.ssprop.select_channels, (g4, 3, 1, "topk", "aten"))
    torch.library.opcheck(torch.ops.ssprop.select_channels, (g4, 1, 2, "topk", "aten"))
    cache, state = torch.zeros(6, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)
    torch.library.opcheck(
        torch.ops.ssprop.select_channels_cached, (g4, 3, 1, "topk", "aten", 2, cache, state)
    )
    x, w = torch.randn(5, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    g2 = torch.randn(5, 6, dtype=torch.float64)
    idx = torch.ops.ssprop.select_channels(g2, 3, 1, "topk", "aten")
    for needs in ((True, True, True), (False, True, True)):
        torch.library.opcheck(torch.ops.ssprop.linear_backward, (g2, x, w, idx, *needs, "aten"))


def test_ops_equal_the_masked_dense_backward():
    """The op itself (not only the layer) keeps the specified gradients."""
    g, x, w, idx, *rest = _conv_args(1, 6, True, (True, True, True))
    gi, gw, gb = torch.ops.ssprop.conv2d_backward(g, x, w, idx, *rest)
    mask = torch.zeros(6, dtype=g.dtype)
    mask[idx] = 1
    ref = torch.ops.aten.convolution_backward(
        g * mask.view(1, -1, 1, 1), x, w, [6], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
        [True, True, True],
    )  # fmt: skip
    for got, want in zip((gi, gw, gb), ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert gi.is_contiguous(memory_format=torch.channels_last)
    assert gw.stride() == w.stride()

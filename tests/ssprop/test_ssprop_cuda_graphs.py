"""ssProp's custom ops inside CUDA graphs, on a GPU: ``torch.compile(mode="reduce-overhead")``
of a whole train step against eager gradients, and the per-layer capture the benchmark times.

Every test here needs CUDA and is skipped elsewhere; the GPU runbook runs this file in its first
stage (``python benchmarks/gpu/runbook.py run``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
import torch
from torch import nn

import ssprop
from greentrain.bench.clock import CapturedBackward

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: runs in the GPU runbook's first stage (benchmarks/gpu/runbook.py)",
)
CL = torch.channels_last


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 without TF32, so compiled and eager gradients compare at fp32 precision."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, groups=64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def _grads(model: nn.Module, run, x, y) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(run(x), y).backward()
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("backend", ["triton", "aten"])
def test_reduce_overhead_step_with_custom_ops_matches_eager_gradients_in_cuda_graphs(backend):
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = ssprop.convert(_small_net(), 0.5, linear=True, backend=backend).cuda()
    eager.to(memory_format=CL)
    compiled_model = copy.deepcopy(eager)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(compiled_model, mode="reduce-overhead", fullgraph=True)
    y = torch.randint(0, 10, (8,), device="cuda")
    for _ in range(4):  # recorded, then replayed: both must equal eager
        x = torch.randn(8, 3, 16, 16, device="cuda").to(memory_format=CL)
        want = _grads(eager, eager, x, y)
        got = _grads(compiled_model, compiled, x, y)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-4)  # inductor: fp32 rounding
    assert not counters["graph_break"]
    assert not counters["inductor"]["cudagraph_skips"], "ran without CUDA graphs"
    torch._dynamo.reset()


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_a_layer_backward_captured_on_its_forward_stream_replays_eager_gradients(sparse):
    torch.manual_seed(0)
    layer = nn.Conv2d(16, 32, 3, padding=1).cuda()
    if sparse:
        layer = ssprop.convert(layer, 0.5)
    layer.to(memory_format=CL)
    x = torch.randn(8, 16, 12, 12, device="cuda").to(memory_format=CL).requires_grad_()
    g = torch.randn(8, 32, 12, 12, device="cuda").to(memory_format=CL)
    targets = [layer.weight, layer.bias, x]

    captured = CapturedBackward(lambda: (layer(x), targets, g))
    captured.graph.replay()
    torch.cuda.synchronize()
    want = torch.autograd.grad(layer(x), targets, g)
    for got, w in zip(captured.grads, want, strict=True):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)
    assert captured.seconds(5) > 0


def test_the_per_layer_table_times_every_conv_by_graph_replay_on_cuda():
    from greentrain.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            ["bench", "ssprop", "--model", "resnet18", "--input", "3,16,16", "--batch-size", "4",
             "--device", "cuda", "--dtype", "bfloat16", "--channels-last", "--drops", "0,0.8",
             "--steps", "2", "--warmup", "1", "--layer-reps", "2", "--energy-rounds", "1",
             "--energy-block-s", "0.05", "--no-record", "--json", "--quiet"]
        )  # fmt: skip
    assert code == 0
    layers = json.loads(buf.getvalue())["layers"]
    assert layers
    for row in layers:
        assert (row["timing"], row["capture_error"]) == ("cuda graph replay", None), row["name"]
        assert all(s["backward_s"] > 0 for s in row["sparse"])

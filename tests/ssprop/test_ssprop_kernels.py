"""The Triton selection kernels (``ssprop.kernels``) against torch.

Triton's interpreter must be switched on (``TRITON_INTERPRET=1``) before triton is first
imported, so the CPU checks run in one subprocess (this file run as a script) and each test
reads its own check's result. The CUDA tests run the compiled kernels when a GPU exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import ssprop
from ssprop import select as sel

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}
CONV_CFGS = {
    "3x3": dict(in_channels=4, out_channels=10, kernel_size=3, padding=1),
    "grouped": dict(in_channels=4, out_channels=12, kernel_size=3, padding=1, groups=2),
    "depthwise": dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8),
    "1x1s2": dict(in_channels=6, out_channels=10, kernel_size=1, stride=2, bias=False),
}


# -- checks (run on CPU tensors under the interpreter, and on CUDA by the CUDA tests) ---------
def _masked_reference(cfg: dict, drop: float, layout, device: str, backend: str, pad: int = 0):
    """Grads of a sparse layer and of nn.Conv2d fed grad_output with the dropped channels
    zeroed (float64); ``pad`` forces tensor-core padding of that many channels."""
    torch.manual_seed(0)
    sparse = ssprop.SparseConv2d(**cfg, dtype=torch.float64, drop_rate=drop, backend=backend)
    dense = nn.Conv2d(**cfg, dtype=torch.float64)
    dense.load_state_dict(sparse.state_dict())
    sparse.to(device, memory_format=layout)
    dense.to(device, memory_format=layout)
    x = torch.randn(2, cfg["in_channels"], 7, 6, dtype=torch.float64, device=device)
    x = x.to(memory_format=layout)
    with torch.no_grad():
        g = torch.randn_like(dense(x))
    c, groups = g.shape[1], cfg.get("groups", 1)
    imp = g.abs().sum((0, 2, 3)).cpu()
    mask = torch.zeros(c, dtype=torch.float64)
    if groups > 1 and c == groups:
        mask[imp.topk(sel.num_kept(c, drop)).indices] = 1
    else:
        k = sel.num_kept(c // groups, drop)
        idx = imp.view(groups, -1).topk(k, dim=1).indices + torch.arange(groups)[:, None] * (
            c // groups
        )
        mask[idx.flatten()] = 1
    mask = mask.to(device).view(1, -1, 1, 1)
    original = sel.tensor_core_padding
    if pad:
        sel.tensor_core_padding = lambda grad, k, n: pad if k + pad <= n else 0
    try:
        out = []
        for module, go in ((sparse, g), (dense, g * mask)):
            xi = x.detach().clone().requires_grad_()
            module(xi).backward(go)
            out.append((xi.grad, module.weight.grad, module.bias))
    finally:
        sel.tensor_core_padding = original
    (gx, gw, b), (gxd, gwd, bd) = out
    torch.testing.assert_close(gx, gxd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gwd, rtol=1e-12, atol=1e-12)
    if b is not None:
        torch.testing.assert_close(b.grad, bd.grad, rtol=1e-12, atol=1e-12)
    assert gx.is_contiguous(memory_format=layout) and gw.stride() == sparse.weight.stride()


def _abs_sum_check(device: str, layout_name: str, dtype: torch.dtype) -> None:
    from ssprop import kernels

    ts = kernels.load()
    g = torch.randn(3, 10, 5, 7, device=device).to(dtype)
    if layout_name == "strided":
        g = g.transpose(2, 3)
    elif layout_name != "2d":
        g = g.to(memory_format=LAYOUTS[layout_name])
    else:
        g = g.reshape(-1, 7)
    dims = (0,) if g.dim() == 2 else (0, 2, 3)
    got = ts.channel_abs_sum(g)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    want = g.double().abs().sum(dims)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)


def _abs_sum_large_check(device: str) -> None:
    """Enough rows for several partial sums per program (the row loop and the final sum)."""
    from ssprop import kernels

    ts = kernels.load()
    for g in (
        torch.randn(4, 3, 128, 160, device=device).to(memory_format=torch.channels_last),
        torch.randn(70001, 5, device=device),
        torch.randn(3, 4, 64, 70, device=device),
    ):
        dims = (0,) if g.dim() == 2 else (0, 2, 3)
        want = g.double().abs().sum(dims)
        torch.testing.assert_close(ts.channel_abs_sum(g).double(), want, rtol=1e-5, atol=1e-3)


def _gather_check(device: str, layout_name: str, pad: int) -> None:
    from ssprop import kernels

    ts = kernels.load()
    idx = torch.tensor([7, 2, 5, 9], device=device)
    if layout_name == "2d":
        g = torch.randn(37, 10, device=device)
        y = ts.gather_channels(g, idx, pad)
        assert y.shape == (37, 4 + pad) and torch.equal(y[:, :4], g[:, idx])
        assert not y[:, 4:].any()
        return
    fmt = LAYOUTS[layout_name]
    g = torch.randn(3, 10, 5, 7, device=device).to(memory_format=fmt)
    y = ts.gather_channels(g, idx, pad)
    assert y.shape == (3, 4 + pad, 5, 7) and y.is_contiguous(memory_format=fmt)
    assert torch.equal(y[:, :4], g.index_select(1, idx)) and not y[:, 4:].any()
    w = torch.randn(10, 3, 3, 2, device=device).to(memory_format=fmt)
    wr = ts.gather_rows(w, idx, pad)
    assert wr.shape == (4 + pad, 3, 3, 2) and wr.is_contiguous(memory_format=fmt)
    assert torch.equal(wr[:4], w.index_select(0, idx)) and not wr[4:].any()


def _linear_check(device: str) -> None:
    torch.manual_seed(0)
    sparse = ssprop.SparseLinear(6, 10, dtype=torch.float64, drop_rate=0.7, backend="triton")
    dense = nn.Linear(6, 10, dtype=torch.float64)
    dense.load_state_dict(sparse.state_dict())
    sparse.to(device)
    dense.to(device)
    x = torch.randn(3, 5, 6, dtype=torch.float64, device=device)
    g = torch.randn(3, 5, 10, dtype=torch.float64, device=device)
    mask = torch.zeros(10, dtype=torch.float64, device=device)
    mask[g.abs().sum((0, 1)).topk(3).indices] = 1
    grads = []
    for module, go in ((sparse, g), (dense, g * mask)):
        xi = x.clone().requires_grad_()
        module(xi).backward(go)
        grads.append((xi.grad, module.weight.grad, module.bias.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _checks(device: str) -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {}
    for layout in ("nchw", "nhwc", "2d", "strided"):
        for dtype in (torch.float32, torch.bfloat16, torch.float64):
            name = f"abs_sum-{layout}-{str(dtype)[6:]}"
            checks[name] = lambda lay=layout, dt=dtype: _abs_sum_check(device, lay, dt)
    checks["abs_sum-large"] = lambda: _abs_sum_large_check(device)
    for layout in ("nchw", "nhwc", "2d"):
        for pad in (0, 3):
            checks[f"gather-{layout}-pad{pad}"] = lambda lay=layout, p=pad: _gather_check(
                device, lay, p
            )
    for name, cfg in CONV_CFGS.items():
        for layout_name, layout in LAYOUTS.items():
            checks[f"conv-{name}-{layout_name}"] = lambda c=cfg, lay=layout: _masked_reference(
                c, 0.6, lay, device, "triton"
            )
    for backend in ("triton", "aten"):
        for layout_name, layout in LAYOUTS.items():
            checks[f"pad-{backend}-{layout_name}"] = lambda b=backend, lay=layout: (
                _masked_reference(CONV_CFGS["3x3"], 0.8, lay, device, b, pad=3)
            )
    checks["linear"] = lambda: _linear_check(device)
    return checks


CHECK_NAMES = list(_checks("cpu"))


def _run_checks(device: str) -> dict[str, str]:
    results = {}
    for name, check in _checks(device).items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # reported by the test of that name
            results[name] = f"{type(exc).__name__}: {exc}"
    return results


@pytest.fixture(scope="module")
def interpreter_results() -> dict[str, str]:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_triton_kernels_under_the_interpreter_match_torch(interpreter_results, name):
    assert interpreter_results[name] == "ok"


def test_importing_ssprop_and_a_cpu_backward_never_import_triton():
    code = (
        "import sys, torch, ssprop; "
        "m = ssprop.SparseConv2d(3, 4, 3, drop_rate=0.5); "
        "m(torch.randn(2, 3, 5, 5)).sum().backward(); repr(m); "
        "print('triton' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_backend_setting_is_validated_recorded_and_resolved():
    from ssprop import kernels

    with pytest.raises(ValueError, match="backend must be one of auto, aten, triton") as err:
        ssprop.SparseConv2d(3, 4, 3, backend="cuda")
    assert "\n" not in str(err.value)
    layer = ssprop.SparseConv2d(3, 4, 3, drop_rate=0.5, backend="aten")
    assert "backend='aten'" in repr(layer)
    assert kernels.resolve_backend("auto", "cpu") == "aten"
    assert kernels.resolve_backend("aten", "cuda") == "aten"
    net = ssprop.convert(nn.Sequential(nn.Conv2d(3, 4, 3)), 0.5, backend="aten")
    assert net[0].backend == "aten"


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreter is on")
def test_triton_backend_on_cpu_tensors_raises_a_one_line_error():
    pytest.importorskip("triton")
    layer = ssprop.SparseConv2d(3, 4, 3, drop_rate=0.5, backend="triton")
    with pytest.raises(ValueError, match="backend='triton' runs on CUDA tensors") as err:
        layer(torch.randn(2, 3, 5, 5)).sum().backward()
    assert "\n" not in str(err.value)


# -- CUDA: the compiled kernels ---------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("name", CHECK_NAMES)
def test_triton_kernels_on_cuda_match_torch(name):
    pytest.importorskip("triton")
    _checks("cuda")[name]()


@cuda
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_cuda_bf16_triton_backend_equals_aten_backend(layout):
    """Same kept channels, same shrunk cuDNN call (K=12 padded to 16): equal gradients."""
    pytest.importorskip("triton")
    cfg = dict(in_channels=16, out_channels=64, kernel_size=3, padding=1)
    scale = torch.linspace(0.1, 4.0, 64, device="cuda").view(1, -1, 1, 1)
    g = ((torch.randn(4, 64, 8, 8, device="cuda").abs() + 0.5) * scale).bfloat16()
    x = torch.randn(4, 16, 8, 8, device="cuda").bfloat16()
    grads = []
    for backend in ("triton", "aten"):
        torch.manual_seed(0)
        layer = ssprop.SparseConv2d(**cfg, drop_rate=0.8, backend=backend)
        layer.to("cuda", torch.bfloat16, memory_format=LAYOUTS[layout])
        xi = x.to(memory_format=LAYOUTS[layout]).requires_grad_()
        layer(xi).backward(g.to(memory_format=LAYOUTS[layout]))
        grads.append((xi.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)
    rows = grads[0][1].flatten(1).abs().sum(1)
    assert int((rows != 0).sum()) == 12


if __name__ == "__main__":  # the interpreter subprocess of ``interpreter_results``
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_run_checks("cpu")))

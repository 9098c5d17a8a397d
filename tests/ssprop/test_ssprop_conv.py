"""SparseConv2d: forward identity, gradient equivalence to the masked-dense reference, FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssprop import select as sel
from ssprop.conv import SparseConv2d


def _kept_mask(grad: torch.Tensor, groups: int, drop: float) -> torch.Tensor:
    """Independent reference of the kept output channels (1.0 kept, 0.0 dropped)."""
    c = grad.shape[1]
    imp = grad.double().abs().mean(dim=(0, 2, 3))
    mask = torch.zeros(c, dtype=grad.dtype)
    per_group = c // groups
    if groups > 1 and per_group == 1:
        k = max(1, int((1 - drop) * c + 1e-9))
        mask[imp.topk(k).indices] = 1
    else:
        k = max(1, int((1 - drop) * per_group + 1e-9))
        idx = imp.view(groups, per_group).topk(k, dim=1).indices
        idx = idx + torch.arange(groups).unsqueeze(1) * per_group
        mask[idx.flatten()] = 1
    return mask.view(1, -1, 1, 1)


def _pair(cfg: dict, *, drop: float, dtype=torch.float64, selection="topk", dims="channel"):
    torch.manual_seed(0)
    sparse = SparseConv2d(**cfg, dtype=dtype, drop_rate=drop, selection=selection, dims=dims)
    dense = nn.Conv2d(**cfg, dtype=dtype)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def _run(module: nn.Module, x: torch.Tensor, g: torch.Tensor):
    xi = x.detach().clone().requires_grad_(x.requires_grad)
    y = module(xi)
    y.backward(g)
    bias = None if module.bias is None else module.bias.grad
    return y, xi.grad, module.weight.grad, bias


GRID = [
    dict(in_channels=4, out_channels=10, kernel_size=3),
    dict(in_channels=4, out_channels=10, kernel_size=3, padding=1, bias=False),
    dict(in_channels=4, out_channels=10, kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)),
    dict(in_channels=4, out_channels=8, kernel_size=4, padding="same", dilation=(2, 1)),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding="same"),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding="valid", stride=2),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding=2, dilation=2),
    dict(in_channels=4, out_channels=12, kernel_size=3, padding=1, groups=2),
    dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8),  # depthwise
    dict(in_channels=8, out_channels=16, kernel_size=3, padding=1, groups=8),  # depth mult 2
    dict(in_channels=4, out_channels=8, kernel_size=1, bias=False),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding=1, padding_mode="reflect"),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding=(1, 2), padding_mode="replicate"),
    dict(in_channels=4, out_channels=8, kernel_size=3, padding=1, padding_mode="circular"),
    dict(in_channels=4, out_channels=8, kernel_size=4, padding="same", padding_mode="reflect"),
]


def _ids(cfg: dict) -> str:
    return "-".join(f"{k[:4]}{v}" for k, v in cfg.items() if k not in ("in_channels",))


@pytest.mark.parametrize("cfg", GRID, ids=_ids)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_float64_grads_equal_dense_backward_with_dropped_channels_zeroed(cfg, channels_last):
    drop = 0.6
    sparse, dense = _pair(cfg, drop=drop)
    x = torch.randn(2, cfg["in_channels"], 9, 8, dtype=torch.float64, requires_grad=True)
    if channels_last:
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
        sparse.to(memory_format=torch.channels_last)
        dense.to(memory_format=torch.channels_last)
    with torch.no_grad():
        g = torch.randn_like(dense(x))
    ys, gxs, gws, gbs = _run(sparse, x, g)
    yd, gxd, gwd, gbd = _run(dense, x, g * _kept_mask(g, cfg.get("groups", 1), drop))
    assert torch.equal(ys, yd)
    tol = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gxs, gxd, **tol)
    torch.testing.assert_close(gws, gwd, **tol)
    if gbs is not None:
        torch.testing.assert_close(gbs, gbd, **tol)
    dropped = (_kept_mask(g, cfg.get("groups", 1), drop).flatten() == 0).nonzero().flatten()
    assert dropped.numel() > 0
    assert torch.count_nonzero(gws[dropped]) == 0
    if channels_last:
        assert ys.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("cfg", [GRID[0], GRID[3], GRID[8], GRID[11]], ids=_ids)
def test_drop_zero_gives_bit_identical_grads_to_nn_conv2d(cfg):
    sparse, dense = _pair(cfg, drop=0.0, dtype=torch.float32)
    x = torch.randn(2, cfg["in_channels"], 9, 8, requires_grad=True)
    g = torch.randn_like(dense(x))
    for a, b in zip(_run(sparse, x, g), _run(dense, x, g), strict=True):
        assert a is None and b is None or torch.equal(a, b)


def test_eval_mode_and_no_grad_take_native_path_with_identical_output():
    sparse, dense = _pair(GRID[0], drop=0.8, dtype=torch.float32)
    x = torch.randn(2, 4, 9, 8)
    sparse.eval()
    assert torch.equal(sparse(x), dense(x))
    sparse.train()
    with torch.no_grad():
        y = sparse(x)
    assert y.grad_fn is None and torch.equal(y, dense(x))


def test_first_layer_input_without_grad_still_gets_sparse_weight_grads():
    sparse, dense = _pair(GRID[0], drop=0.5)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)  # requires_grad False
    g = torch.randn(2, 10, 7, 6, dtype=torch.float64)
    _, gx, gw, gb = _run(sparse, x, g)
    _, _, gwd, gbd = _run(dense, x, g * _kept_mask(g, 1, 0.5))
    assert gx is None
    torch.testing.assert_close(gw, gwd)
    torch.testing.assert_close(gb, gbd)


@pytest.mark.parametrize(
    "dtype,tol",
    [(torch.float32, 1e-4), (torch.bfloat16, 5e-2), (torch.float16, 5e-3)],
    ids=["fp32", "bf16", "fp16"],
)
def test_low_precision_grads_match_masked_reference_within_tolerance(dtype, tol):
    cfg = dict(in_channels=8, out_channels=16, kernel_size=3, padding=1)
    sparse, dense = _pair(cfg, drop=0.5, dtype=dtype)
    x = torch.randn(2, 8, 8, 8, dtype=dtype, requires_grad=True)
    try:
        g = torch.randn_like(dense(x))
    except RuntimeError as exc:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"conv2d in {dtype} unsupported on this device: {exc}")
    ys, gx, gw, gb = _run(sparse, x, g)
    _, gxd, gwd, gbd = _run(dense, x, g * _kept_mask(g, 1, 0.5))
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    for a, b in ((gx, gxd), (gw, gwd), (gb, gbd)):
        torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * 10)


def test_cpu_autocast_bf16_matches_nn_conv2d_forward_and_masked_backward():
    cfg = dict(in_channels=8, out_channels=16, kernel_size=3, padding=1)
    sparse, dense = _pair(cfg, drop=0.5, dtype=torch.float32)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xs = x.detach().clone().requires_grad_()
        ys = sparse(xs)
        xd = x.detach().clone().requires_grad_()
        yd = dense(xd)
    assert ys.dtype == torch.bfloat16 and torch.equal(ys, yd)
    g = torch.randn_like(ys)
    ys.backward(g)
    yd.backward(g * _kept_mask(g, 1, 0.5))
    assert xs.grad.dtype == sparse.weight.grad.dtype == torch.float32
    torch.testing.assert_close(xs.grad, xd.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(sparse.weight.grad, dense.weight.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad, rtol=2e-2, atol=2e-2)


def _backward_flops(module: nn.Module, x: torch.Tensor) -> int:
    y = module(x)
    with FlopCounterMode(display=False) as counter:
        y.sum().backward()
    return counter.get_total_flops()


def test_executed_backward_flops_fall_with_drop_rate():
    cfg = dict(in_channels=16, out_channels=32, kernel_size=3, padding=1)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    flops = []
    for drop in (0.0, 0.5, 0.75):
        sparse, _ = _pair(cfg, drop=drop, dtype=torch.float32)
        flops.append(_backward_flops(sparse, x))
    assert flops[0] > flops[1] > flops[2] > 0
    assert flops[2] <= 0.3 * flops[0]


def test_depthwise_backward_flops_fall_with_drop_rate():
    cfg = dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=16)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    dense = _backward_flops(_pair(cfg, drop=0.0, dtype=torch.float32)[0], x)
    sparse = _backward_flops(_pair(cfg, drop=0.75, dtype=torch.float32)[0], x)
    assert sparse < dense


@pytest.mark.parametrize("dims", ["spatial", "all"])
def test_spatial_and_all_modes_mask_gradients_without_saving_flops(dims):
    cfg = dict(in_channels=4, out_channels=8, kernel_size=3, padding=1)
    sparse, dense = _pair(cfg, drop=0.5, dims=dims)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    _, gx, gw, gb = _run(sparse, x, g)
    _, gxd, gwd, gbd = _run(dense, x, sel.mask_grad(g, 0.5, dims))
    torch.testing.assert_close(gx, gxd)
    torch.testing.assert_close(gw, gwd)
    masked = sel.mask_grad(g, 0.5, dims)
    kept = torch.count_nonzero(masked) / masked.numel()
    assert float(kept) == pytest.approx(0.5, abs=0.01)
    flops_sparse = _backward_flops(sparse, x)
    flops_dense = _backward_flops(_pair(cfg, drop=0.0, dims=dims)[0], x)
    assert flops_sparse >= flops_dense


def test_random_selection_keeps_exactly_k_channels():
    cfg = dict(in_channels=4, out_channels=10, kernel_size=3)
    sparse, _ = _pair(cfg, drop=0.8, selection="random")
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    sparse(x).backward(torch.randn(2, 10, 5, 5, dtype=torch.float64))
    rows = sparse.weight.grad.flatten(1).abs().sum(1)
    assert int(torch.count_nonzero(rows)) == sel.num_kept(10, 0.8) == 2


def test_num_kept_floors_and_keeps_at_least_one():
    assert sel.num_kept(10, 0.8) == 2
    assert sel.num_kept(64, 0.8) == 12
    assert sel.num_kept(3, 0.9) == 1
    assert sel.num_kept(8, 0.0) == 8


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5"])
def test_bad_drop_rate_raises_one_line_value_error(bad):
    with pytest.raises(ValueError, match=r"drop_rate") as err:
        SparseConv2d(3, 4, 3, drop_rate=bad)
    assert "\n" not in str(err.value)
    layer = SparseConv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"drop_rate"):
        layer.drop_rate = bad


def test_bad_selection_and_dims_raise_one_line_value_errors():
    with pytest.raises(ValueError, match="selection must be one of topk, random") as err:
        SparseConv2d(3, 4, 3, selection="foo")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="dims must be one of"):
        SparseConv2d(3, 4, 3, dims="height")


def test_is_a_conv2d_with_identical_state_dict_keys_and_target_rate():
    layer = SparseConv2d(3, 4, 3, drop_rate=0.8)
    assert isinstance(layer, nn.Conv2d)
    assert list(layer.state_dict()) == list(nn.Conv2d(3, 4, 3).state_dict())
    assert layer.target_drop_rate == 0.8
    layer.drop_rate = 0.4
    assert layer.target_drop_rate == 0.8 and "drop_rate=0.4" in repr(layer)


def test_torch_compile_runs_sparse_backward_without_crashing():
    cfg = dict(in_channels=4, out_channels=8, kernel_size=3, padding=1)
    sparse, dense = _pair(cfg, drop=0.5, dtype=torch.float32)
    compiled = torch.compile(sparse, backend="aot_eager")
    x = torch.randn(2, 4, 6, 6)
    y = compiled(x)
    g = torch.randn_like(y)
    y.backward(g)
    _, _, gwd, _ = _run(dense, x, g * _kept_mask(g, 1, 0.5))
    torch.testing.assert_close(sparse.weight.grad, gwd)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_grads_match_cpu_masked_reference():
    cfg = dict(in_channels=8, out_channels=16, kernel_size=3, padding=1)
    sparse, dense = _pair(cfg, drop=0.5)
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    sparse.cuda()
    _, gx, gw, gb = _run(sparse, x.cuda(), g.cuda())
    _, gxd, gwd, gbd = _run(dense, x, g * _kept_mask(g, 1, 0.5))
    torch.testing.assert_close(gx.cpu(), gxd)
    torch.testing.assert_close(gw.cpu(), gwd)
    torch.testing.assert_close(gb.cpu(), gbd)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_padding_to_tensor_core_multiple_keeps_masked_gradients():
    cfg = dict(in_channels=16, out_channels=64, kernel_size=3, padding=1, bias=True)
    sparse, dense = _pair(cfg, drop=0.8, dtype=torch.float32)  # K = 12, run as 16 channels
    assert sel.tensor_core_padding(torch.ones(1, device="cuda", dtype=torch.bfloat16), 12, 64) == 4
    sparse = sparse.to("cuda", torch.bfloat16, memory_format=torch.channels_last)
    x = torch.randn(4, 16, 8, 8).to(torch.bfloat16)
    # well-separated channel magnitudes: the kept set cannot depend on rounding
    scale = torch.linspace(0.1, 4.0, 64).view(1, -1, 1, 1)
    g = (torch.randn(4, 64, 8, 8).abs() + 0.5).mul(scale).to(torch.bfloat16)
    xc = x.cuda().contiguous(memory_format=torch.channels_last).requires_grad_()
    _, gx, gw, gb = _run(sparse, xc, g.cuda().contiguous(memory_format=torch.channels_last))
    mask = _kept_mask(g.double(), 1, 0.8)
    dense = dense.double()
    with torch.no_grad():
        dense.weight.copy_(sparse.weight.detach().double().cpu())
        dense.bias.copy_(sparse.bias.detach().double().cpu())
    _, gxd, gwd, gbd = _run(dense, x.double().requires_grad_(), g.double() * mask)
    dropped = mask.view(-1) == 0
    assert gw.float().cpu()[dropped].abs().max() == 0 and gb.float().cpu()[dropped].abs().max() == 0
    for got, ref in ((gx, gxd), (gw, gwd), (gb, gbd)):
        err = (got.double().cpu() - ref).norm() / ref.norm()
        assert err < 1e-2, err


def test_tensor_core_padding_is_zero_on_cpu():
    g = torch.ones(2, 64, 4, 4, dtype=torch.bfloat16)
    assert sel.tensor_core_padding(g, 12, 64) == 0


def test_ddp_single_process_gloo_trains_sparse_layer(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        sparse, dense = _pair(GRID[0], drop=0.5, dtype=torch.float32)
        ddp = nn.parallel.DistributedDataParallel(sparse)
        x = torch.randn(2, 4, 9, 8)
        y = ddp(x)
        g = torch.randn_like(y)
        y.backward(g)
        _, _, gwd, _ = _run(dense, x, g * _kept_mask(g, 1, 0.5))
        torch.testing.assert_close(sparse.weight.grad, gwd)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_channel_importance_is_float32_mean_abs_for_every_layout(layout):
    g = torch.randn(3, 5, 4, 6, dtype=torch.bfloat16)
    if layout == "channels_last":
        g = g.to(memory_format=torch.channels_last)
    elif layout == "strided":
        g = g.transpose(2, 3)
    imp = sel.channel_importance(g)
    assert imp.dtype == torch.float32
    torch.testing.assert_close(imp, g.float().abs().mean(dim=(0, 2, 3)))


def test_gather_channels_keeps_channels_last_layout():
    g = torch.randn(2, 8, 3, 5).to(memory_format=torch.channels_last)
    idx = torch.tensor([6, 1, 3])
    out = sel.gather_channels(g, idx)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, g.index_select(1, idx))


def test_frozen_weight_with_trainable_bias_gets_masked_bias_grad():
    sparse, dense = _pair(GRID[0], drop=0.5)
    sparse.weight.requires_grad_(False)
    x = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    g = torch.randn(2, 10, 7, 6, dtype=torch.float64)
    sparse(x).backward(g)
    dense(x).backward(g * _kept_mask(g, 1, 0.5))
    assert sparse.weight.grad is None
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad)

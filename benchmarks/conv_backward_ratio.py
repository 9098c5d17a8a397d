"""Backward/step time of ssprop.SparseConv2d vs nn.Conv2d on a CIFAR-stem ResNet-18.

Variants (dense and one sparse model per drop rate, same weights) are interleaved step by step
after warm-up; each reported figure is the median over steps of the per-step ratio
sparse/dense (times in seconds); the order of the variants rotates every step. Per-layer: the
backward of each conv alone (grad_input + grad_weight, except the stem which needs no
grad_input), dense vs sparse.

    python benchmarks/conv_backward_ratio.py --drops 0,0.8 --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import ssprop


def build_resnet18(num_classes: int = 10) -> nn.Module:
    """CIFAR-stem ResNet-18 (3x3 stride-1 stem, no max-pool)."""
    try:
        from greentrain.jobs.models import build_model

        return build_model("resnet18", num_classes=num_classes)
    except ImportError:
        import torchvision

        model = torchvision.models.resnet18(num_classes=num_classes)
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
        return model


def _now() -> float:
    return time.perf_counter()


def model_ratios(args, drops: list[float]) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    base = build_resnet18()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    variants: dict[str, nn.Module] = {"dense": base}
    for d in drops:
        variants[f"drop{d}"] = ssprop.convert(copy.deepcopy(base), d)
    opts = {}
    for name, m in variants.items():
        m.to(memory_format=fmt).train()
        opts[name] = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, 32, 32).to(memory_format=fmt)
    y = torch.randint(0, 10, (args.batch,))
    loss_fn = nn.CrossEntropyLoss()
    times: dict[str, dict[str, list[float]]] = {n: {"bwd": [], "step": []} for n in variants}
    names = list(variants)
    for it in range(args.warmup + args.steps):
        shift = it % len(names)  # rotate the order so no variant always runs first
        for name in names[shift:] + names[:shift]:
            m, opt = variants[name], opts[name]
            t0 = _now()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(m(x), y)
            t1 = _now()
            loss.backward()
            t2 = _now()
            opt.step()
            t3 = _now()
            if it >= args.warmup:
                times[name]["bwd"].append(t2 - t1)
                times[name]["step"].append(t3 - t0)
    out = {}
    for name in variants:
        row = {}
        for key in ("bwd", "step"):
            ratios = [s / d for s, d in zip(times[name][key], times["dense"][key], strict=True)]
            row[f"{key}_ratio"] = statistics.median(ratios)
            row[f"{key}_s"] = statistics.median(times[name][key])
        out[name] = row
    return out


def layer_ratios(args, drop: float) -> list[tuple[str, float, float, float]]:
    """(layer, dense_bwd_s, sparse_bwd_s, ratio) for every conv of the model."""
    torch.manual_seed(0)
    model = build_resnet18()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    inputs: dict[str, torch.Tensor] = {}

    def keep_input(name: str):
        def hook(module, args, output) -> None:
            inputs[name] = args[0].detach()

        return hook

    hooks = [
        m.register_forward_hook(keep_input(n))
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.randn(args.batch, 3, 32, 32))
    for h in hooks:
        h.remove()
    rows = []
    for name, x in inputs.items():
        dense = model.get_submodule(name).to(memory_format=fmt)
        sparse = ssprop.convert(copy.deepcopy(dense), drop)
        x = x.to(memory_format=fmt).requires_grad_(name != "conv1")
        g = torch.randn_like(dense(x)).to(memory_format=fmt)
        ts: dict[str, list[float]] = {"dense": [], "sparse": []}
        for it in range(args.warmup + args.layer_steps):
            pairs = [("dense", dense), ("sparse", sparse)]
            for key, layer in pairs if it % 2 else pairs[::-1]:
                layer.weight.grad = None
                y = layer(x)
                t0 = _now()
                y.backward(g)
                t1 = _now()
                if it >= args.warmup:
                    ts[key].append(t1 - t0)
        ratio = statistics.median(s / d for s, d in zip(ts["sparse"], ts["dense"], strict=True))
        rows.append((name, statistics.median(ts["dense"]), statistics.median(ts["sparse"]), ratio))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drops", default="0,0.8")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--per-layer", action="store_true")
    p.add_argument("--layer-steps", type=int, default=10)
    p.add_argument("--layers-only", action="store_true", help="skip the whole-model timing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    drops = [float(d) for d in args.drops.split(",")]
    print(
        f"torch {torch.__version__}, threads {args.threads}, batch {args.batch}, "
        f"channels_last {args.channels_last}, steps {args.steps} (+{args.warmup} warm-up)"
    )
    res = {} if args.layers_only else model_ratios(args, drops)
    if res:
        print(f"{'variant':<10} {'bwd_s':>8} {'bwd/dense':>10} {'step_s':>8} {'step/dense':>11}")
    for name, r in res.items():
        print(
            f"{name:<10} {r['bwd_s']:8.4f} {r['bwd_ratio']:10.3f} "
            f"{r['step_s']:8.4f} {r['step_ratio']:11.3f}"
        )
    if args.per_layer or args.layers_only:
        drop = max(drops)
        print(f"\nper-layer backward at drop {drop} (median of {args.layer_steps})")
        for name, dense_s, sparse_s, ratio in layer_ratios(args, drop):
            print(f"{name:<22} dense {dense_s * 1e3:8.2f} ms  sparse {sparse_s * 1e3:8.2f} ms  "
                  f"ratio {ratio:6.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

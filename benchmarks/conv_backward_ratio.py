"""Backward/step time of ssprop.SparseConv2d vs nn.Conv2d on a CIFAR-stem ResNet-18.

Variants (same weights): ``dense`` (nn.Conv2d in the chosen layout), ``dense_other`` (nn.Conv2d
in the other memory layout, to show the fastest dense), one ``ssprop.convert``-ed model per drop
rate (``drop0.0`` is SparseConv2d at drop 0: must match nn.Conv2d) and ``bar`` (the paper's bar
schedule with one step per epoch: drop 0 and 0.8 alternate every step, so the mean of its
per-round ratio is the schedule's average). They are interleaved step by step after warm-up,
the order rotating every round; each figure is the median over rounds of the per-round ratio
variant/dense (times in seconds). Per-layer: the backward of each conv alone (grad_input +
grad_weight, except the stem which needs no grad_input), dense vs sparse, interleaved.
``uptime``'s load average is printed before and after each part (a loaded machine skews times).

    python benchmarks/conv_backward_ratio.py --drops 0,0.8 --steps 20 --threads 2 --per-layer
"""

from __future__ import annotations

import argparse
import copy
import os
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


def load_average() -> str:
    """The 1/5/15-minute load averages (as ``uptime`` prints them), or a reason."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError as exc:  # pragma: no cover - platform without getloadavg
        return f"load average unavailable ({exc})"
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


def model_ratios(args, drops: list[float]) -> dict[str, dict[str, float]]:
    """Per-variant medians of per-round ratios to ``dense`` (backward and train step)."""
    torch.manual_seed(0)
    base = build_resnet18()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    other = torch.contiguous_format if args.channels_last else torch.channels_last
    variants: dict[str, nn.Module] = {"dense": base, "dense_other": copy.deepcopy(base)}
    for d in drops:
        variants[f"drop{d}"] = ssprop.convert(copy.deepcopy(base), d)
    if args.bar:
        variants["bar"] = ssprop.convert(copy.deepcopy(base), args.bar_drop)
    opts = {}
    for name, m in variants.items():
        m.to(memory_format=other if name == "dense_other" else fmt).train()
        opts[name] = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    xs = {
        "fmt": torch.randn(args.batch, 3, 32, 32).to(memory_format=fmt),
    }
    xs["other"] = xs["fmt"].to(memory_format=other)
    y = torch.randint(0, 10, (args.batch,))
    loss_fn = nn.CrossEntropyLoss()
    times: dict[str, dict[str, list[float]]] = {n: {"bwd": [], "step": []} for n in variants}
    names = list(variants)
    bar_rates: list[float] = []
    for it in range(args.warmup + args.steps):
        if args.bar:  # bar schedule, period 2 "epochs" of one step: dense, sparse, dense, ...
            rate = 0.0 if it % 2 == 0 else args.bar_drop
            ssprop.set_drop_rate(variants["bar"], rate)
        shift = it % len(names)  # rotate the order so no variant always runs first
        for name in names[shift:] + names[:shift]:
            m, opt = variants[name], opts[name]
            x = xs["other" if name == "dense_other" else "fmt"]
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
        if args.bar and it >= args.warmup:
            bar_rates.append(rate)
    out = {}
    for name in variants:
        row = {}
        for key in ("bwd", "step"):
            ratios = [s / d for s, d in zip(times[name][key], times["dense"][key], strict=True)]
            row[f"{key}_ratio"] = statistics.median(ratios)
            row[f"{key}_s"] = statistics.median(times[name][key])
            if name == "bar":  # the schedule's average: mean over its alternating phases
                phase = {r: [q for q, rr in zip(ratios, bar_rates, strict=True) if rr == r]
                         for r in (0.0, args.bar_drop)}  # fmt: skip
                meds = [statistics.median(v) for v in phase.values() if v]
                row[f"{key}_ratio"] = sum(meds) / len(meds)
                row[f"{key}_phases"] = meds
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
    p.add_argument("--no-bar", dest="bar", action="store_false", help="skip the bar schedule")
    p.add_argument("--bar-drop", type=float, default=0.8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    drops = [float(d) for d in args.drops.split(",")]
    print(
        f"torch {torch.__version__}, threads {args.threads}, batch {args.batch}, "
        f"channels_last {args.channels_last}, steps {args.steps} (+{args.warmup} warm-up), "
        f"ssprop from {os.path.dirname(ssprop.__file__)}"
    )
    print(f"before model timing: {load_average()}")
    res = {} if args.layers_only else model_ratios(args, drops)
    if res:
        print(f"after model timing:  {load_average()}")
        print(f"{'variant':<12} {'bwd_s':>8} {'bwd/dense':>10} {'step_s':>8} {'step/dense':>11}")
    for name, r in res.items():
        extra = ""
        if "step_phases" in r:
            extra = "  (mean of phases; step " + "/".join(f"{v:.3f}" for v in r["step_phases"])
            extra += ", bwd " + "/".join(f"{v:.3f}" for v in r["bwd_phases"]) + ")"
        print(
            f"{name:<12} {r['bwd_s']:8.4f} {r['bwd_ratio']:10.3f} "
            f"{r['step_s']:8.4f} {r['step_ratio']:11.3f}{extra}"
        )
    if args.per_layer or args.layers_only:
        drop = max(drops)
        print(f"\nper-layer backward at drop {drop} (median of {args.layer_steps})")
        print(f"before per-layer: {load_average()}")
        for name, dense_s, sparse_s, ratio in layer_ratios(args, drop):
            print(f"{name:<22} dense {dense_s * 1e3:8.2f} ms  sparse {sparse_s * 1e3:8.2f} ms  "
                  f"ratio {ratio:6.3f}")  # fmt: skip
        print(f"after per-layer: {load_average()}")


if __name__ == "__main__":
    main()

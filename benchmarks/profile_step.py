"""GPU kernel time of one train step, dense vs ssProp, from torch.profiler.

Usage: ``python benchmarks/profile_step.py [--model resnet50] [--stem imagenet]
[--input 3,224,224] [--batch-size 64] [--drop 0.8] [--steps 5]`` (CUDA, bf16 autocast,
channels_last, Adam). Prints, per variant, the wall time per profiled step, the summed GPU
kernel time per step (kernel events only, so nothing is counted twice) and the aten ops with
the most GPU time. The ops' times include their kernels; shares of the step are ours to read.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--stem", default="imagenet")
    parser.add_argument("--input", default="3,224,224", help="C,H,W of one image")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--drop", type=float, default=0.8)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (after 5 warm-up)")
    parser.add_argument("--top", type=int, default=22, help="ops listed per variant")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from greentrain.jobs.models import build_model
    from ssprop.convert import convert

    if not torch.cuda.is_available():
        print(
            "error: no CUDA GPU visible; run this on a machine with an NVIDIA GPU", file=sys.stderr
        )
        return 2
    shape = tuple(int(v) for v in args.input.split(","))
    cl = torch.channels_last
    torch.manual_seed(0)
    base = build_model(args.model, num_classes=10, in_channels=shape[0], stem=args.stem)
    x = torch.randn(args.batch_size, *shape, device="cuda").contiguous(memory_format=cl)
    y = torch.randint(0, 10, (args.batch_size,), device="cuda")

    for label, drop in (("dense", 0.0), (f"sparse@{args.drop:g}", args.drop)):
        model = copy.deepcopy(base)
        if drop:
            convert(model, drop_rate=drop)
        model = model.to("cuda").to(memory_format=cl).train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4)

        def step(model=model, opt=opt) -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x).float(), y)
            loss.backward()
            opt.step()

        for _ in range(5):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            torch.cuda.synchronize()
            wall_s = (time.perf_counter() - t0) / args.steps
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        gpu_ms = sum(e.device_time for e in kernels) / args.steps / 1e3
        print(
            f"== {label}: wall {wall_s * 1e3:.1f} ms/step (profiled), GPU kernel time "
            f"{gpu_ms:.1f} ms/step, {len(kernels) // args.steps} kernels/step"
        )
        ops = [e for e in prof.key_averages() if e.key.startswith("aten::") or "Optimizer" in e.key]
        ops.sort(key=lambda e: e.self_device_time_total, reverse=True)
        for e in ops[: args.top]:
            ms = e.self_device_time_total / args.steps / 1e3
            print(f"   {ms:7.2f} ms  {e.count // args.steps:5d}x  {e.key[:90]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

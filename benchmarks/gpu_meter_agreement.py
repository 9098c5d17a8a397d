"""GPU energy meters side by side on one workload: NVML counter, NVML sampled, Zeus, CodeCarbon.

Usage: ``python benchmarks/gpu_meter_agreement.py [--seconds 60] [--size 8192] [--json F]``.

All four meters are started in this one process, then each is read once just before a bf16
matrix-product loop on ``cuda:0`` and counted from that reading, and all are stopped after it,
so they watch the same joules (a meter's own start can take seconds: CodeCarbon's). The NVML counter
(``nvmlDeviceGetTotalEnergyConsumption``) is the reference; each other figure is given with its
difference from it in percent. GPU domain only (CodeCarbon's CPU/RAM figures are printed apart,
they are estimates of the whole host). Needs an NVIDIA GPU; exits with a one-line reason
otherwise. Joules and seconds throughout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from greentrain.errors import MeterUnavailable
from greentrain.meters import create_meter

METERS = (
    ("nvml counter", "nvml", {"mode": "counter"}),
    ("nvml sampled 0.1 s", "nvml", {"mode": "sampled", "interval_s": 0.1}),
    ("zeus", "zeus", {}),
    ("codecarbon (offline)", "codecarbon", {}),
)


def matmul_load(seconds: float, size: int) -> dict:
    """Repeated ``size``^3 bf16 products on cuda:0 for about ``seconds``; returns TFLOP/s."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        n += 10
    elapsed = time.perf_counter() - t0
    return {"products": n, "seconds": elapsed, "tflops": 2 * size**3 * n / elapsed / 1e12}


def _by_domain(readings) -> dict[str, float]:
    """Cumulative joules per domain (devices summed)."""
    out: dict[str, float] = {}
    for r in readings:
        out[r.domain] = out.get(r.domain, 0.0) + r.energy_j
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration, seconds")
    parser.add_argument("--size", type=int, default=8192, help="matrix side")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "error: no CUDA GPU visible; run this on a machine with an NVIDIA GPU", file=sys.stderr
        )
        return 2
    torch.ones(1, device="cuda")  # create the context before the meters start
    started = []
    unavailable = {}
    for label, name, opts in METERS:
        meter = create_meter(name, **opts)
        try:
            meter.start()
        except MeterUnavailable as err:
            unavailable[label] = err.reason
            continue
        started.append((label, meter))
    offsets = {label: _by_domain(meter.read()) for label, meter in started}
    t0 = time.perf_counter()
    load = matmul_load(args.seconds, args.size)
    wall_s = time.perf_counter() - t0
    results = {}
    for label, meter in started:
        readings = meter.stop()
        totals, before = _by_domain(readings), offsets[label]
        gpu = [r for r in readings if r.domain == "gpu"]
        results[label] = {
            "gpu_j": totals["gpu"] - before.get("gpu", 0.0) if "gpu" in totals else None,
            "methods": sorted({r.method for r in gpu}),
            "other_domains_j": {d: j - before.get(d, 0.0) for d, j in totals.items() if d != "gpu"},
        }
    ref = results.get("nvml counter", {}).get("gpu_j")
    out = {
        "device": torch.cuda.get_device_name(0),
        "load": load,
        "wall_s": wall_s,
        "meters": results,
        "unavailable": unavailable,
    }
    print(
        f"{out['device']}: {load['products']} products of {args.size}^3 bf16 in "
        f"{load['seconds']:.1f} s ({load['tflops']:.0f} TFLOP/s)"
    )
    print(f"{'meter':24s} {'GPU J':>10s} {'mean W':>8s} {'vs counter':>11s}")
    for label, res in results.items():
        joules = res["gpu_j"]
        if joules is None:
            print(f"{label:24s} {'no GPU figure':>10s}")
            continue
        diff = f"{(joules / ref - 1) * 100:+.2f}%" if ref else "n/a"
        res["vs_counter_pct"] = (joules / ref - 1) * 100 if ref else None
        print(f"{label:24s} {joules:10.1f} {joules / wall_s:8.1f} {diff:>11s}")
    for label, reason in unavailable.items():
        print(f"{label:24s} unavailable: {reason}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

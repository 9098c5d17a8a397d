"""Per-meter latency: probe, start, one read, stop (seconds / milliseconds), on this machine.

Usage: ``python benchmarks/meter_overhead.py [--reads N] [METER ...]`` (default: every meter).
Unavailable meters print their reason. ``start`` of codecarbon includes CodeCarbon's one-off
hardware detection in a fresh process ("cold"); a second tracker in the same process is
"warm". Read latency is the median of N reads (default 20).
"""

from __future__ import annotations

import argparse
import statistics
import time

from greentrain.meters import METERS, create_meter


def measure(name: str, reads: int) -> str:
    meter = create_meter(name)
    t0 = time.perf_counter()
    probe = meter.probe()
    probe_s = time.perf_counter() - t0
    if not probe.available:
        return f"{name:10s} probe {probe_s:6.3f} s  unavailable: {probe.reason}"
    t0 = time.perf_counter()
    meter.start()
    start_s = time.perf_counter() - t0
    read_ms = []
    for _ in range(reads):
        t0 = time.perf_counter()
        meter.read()
        read_ms.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    meter.stop()
    stop_ms = (time.perf_counter() - t0) * 1000
    return (
        f"{name:10s} probe {probe_s:6.3f} s  start {start_s:6.3f} s  "
        f"read {statistics.median(read_ms):7.2f} ms (median of {reads})  stop {stop_ms:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meters", nargs="*", default=list(METERS))
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args()
    for name in args.meters:
        print(measure(name, args.reads), flush=True)
    if "codecarbon" in args.meters:
        meter = create_meter("codecarbon")
        t0 = time.perf_counter()
        meter.start()
        warm_s = time.perf_counter() - t0
        meter.stop()
        print(f"{'codecarbon':10s} warm start (hardware plan cached) {warm_s:6.3f} s")


if __name__ == "__main__":
    main()

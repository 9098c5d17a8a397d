"""Cost of one ``client.log`` call inside ``greentrain run`` (the job's side), in µs per call.

A job logs ``--calls`` metrics as fast as it can under ``greentrain run --meter fake`` and
times the loop with ``time.perf_counter`` (wall) and ``time.process_time`` (the job's CPU, which
another load on the machine changes less); this repeats ``--repeats`` times and the medians are
kept. The wrapper appends the metrics to the run's journal and lands them in the store from a
thread of its own, so the figure is what the job pays, whatever the store does. Target: at
most 50 µs per call.

Usage::

    python benchmarks/client_log_cost.py [--calls 20000] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

JOB = """
import sys, time
from greentrain import client
n = int(sys.argv[1])
client.log(step=0, loss=0.0)  # the channel's connection, outside the timing
t, c = time.perf_counter(), time.process_time()
for i in range(n):
    client.log(step=i, loss=1.0 / (i + 1), acc=0.5)
print(1e6 * (time.perf_counter() - t) / n, 1e6 * (time.process_time() - c) / n)
"""


def one(store: Path, calls: int) -> tuple[float, float]:
    """µs per call of one run: wall, and the job's CPU."""
    out = subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--", sys.executable, "-c", JOB, str(calls)],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one(Path(tmp) / "g.db", args.calls) for _ in range(args.repeats)]
    result = {"us_per_call_median": round(statistics.median(r[0] for r in runs), 2),
              "cpu_us_per_call_median": round(statistics.median(r[1] for r in runs), 2),
              "us_per_call_runs": [round(r[0], 2) for r in runs], "calls": args.calls}  # fmt: skip
    wall, cpu = result["us_per_call_median"], result["cpu_us_per_call_median"]
    text = f"client.log: {wall} µs per call, {cpu} µs of the job's CPU (median of {args.repeats})"
    print(json.dumps(result) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

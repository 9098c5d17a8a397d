"""Cost of one ``greentrain.client.log`` call, and the wrapper's fixed cost.

Each ``log(step=i, loss=..., acc=..., lr=...)`` call is timed alone (``perf_counter_ns``), in
a fresh process per case, after a warm-up; the median and the 99th percentile are reported,
in microseconds:

* ``outside_run``: no run (the call checks and encodes its values, then returns);
* ``connected``: under ``greentrain run --meter fake`` (the line goes into the kernel's
  socket buffer);
* ``disconnected``: the wrapper's socket is gone (lines wait in the client's buffer; a
  connection is tried once per back-off interval);
* ``buffering``: connected to a server that accepts and never reads (the kernel buffer is
  full: each call tries one non-blocking send and keeps the line);

and ``wrapper_fixed_s``: median wall time of ``greentrain run -- true`` (default meters) minus
bare ``true``, over ``--repeats`` interleaved runs. Targets: <= 50 us per call, <= 0.5 s.

Usage::

    python benchmarks/client_overhead.py [--calls 20000] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMED = """
import json, sys, time
from greentrain import client
calls, out = int(sys.argv[1]), sys.argv[2]
for i in range(200):  # warm-up: imports, the first connection
    client.log(step=i, loss=0.5, acc=0.9, lr=1e-3)
times = []
for i in range(calls):
    t = time.perf_counter_ns()
    client.log(step=i, loss=0.5 + i * 1e-6, acc=0.9, lr=1e-3)
    times.append(time.perf_counter_ns() - t)
times.sort()
with open(out, "w") as fh:
    json.dump({"median_us": times[len(times) // 2] / 1e3,
               "p99_us": times[int(len(times) * 0.99)] / 1e3}, fh)
"""


def _timed(argv_prefix: list[str], env: dict, calls: int, out: Path) -> dict:
    subprocess.run([*argv_prefix, sys.executable, "-c", TIMED, str(calls), str(out)], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.read_text())


def per_call(calls: int, folder: Path) -> dict[str, dict]:
    """µs per log call (median, p99) in each case of the module docstring."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GREENTRAIN_")}
    out = folder / "t.json"
    results = {"outside_run": _timed([], base, calls, out)}
    wrapped = [sys.executable, "-m", "greentrain", "run", "--store", str(folder / "g.db"),
               "--meter", "fake", "--"]  # fmt: skip
    results["connected"] = _timed(wrapped, base, calls, out)
    gone = dict(base, GREENTRAIN_RUN="bench", GREENTRAIN_CHANNEL=str(folder / "no-socket"))
    results["disconnected"] = _timed([], gone, calls, out)
    path = str(folder / "mute")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    try:
        muted = dict(base, GREENTRAIN_RUN="bench", GREENTRAIN_CHANNEL=path)
        proc = subprocess.Popen([sys.executable, "-c", TIMED, str(calls), str(out)], env=muted,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        conn, _ = server.accept()  # accepted, never read
        proc.wait()  # its exit flush gives up after a few seconds and spills
        conn.close()
        results["buffering"] = json.loads(out.read_text())
    finally:
        server.close()
    return results


def wrapper_fixed_s(repeats: int, folder: Path) -> float:
    """Median wall seconds of ``greentrain run -- true`` minus bare ``true``."""
    wrapped = [sys.executable, "-m", "greentrain", "run", "--store", str(folder / "f.db"),
               "--", "true"]  # fmt: skip
    bare, run = [], []
    for _ in range(repeats):
        for argv, into in ((["true"], bare), (wrapped, run)):
            t = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            into.append(time.perf_counter() - t)
    return statistics.median(run) - statistics.median(bare)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000, help="timed log calls per case")
    ap.add_argument("--repeats", type=int, default=5, help="runs of `greentrain run -- true`")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gt-bench-") as tmp:
        folder = Path(tmp)
        result = {"per_call_us": per_call(args.calls, folder),
                  "wrapper_fixed_s": wrapper_fixed_s(args.repeats, folder)}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for case, figures in result["per_call_us"].items():
        print(f"{case:<14} median {figures['median_us']:7.1f} us   p99 {figures['p99_us']:7.1f} us")
    print(f"wrapper fixed cost (greentrain run -- true): {result['wrapper_fixed_s']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Overhead of ``greentrain run``: job slowdown under the meters, and start+stop latency.

A fixed amount of single-threaded CPU work (calibrated to ``--job-seconds`` of bare run time)
runs once bare and once under ``greentrain run`` (every available meter by default), alternating
``--repeats`` times. The job times itself, so two figures come out:

* ``slowdown`` = job wall time under the wrapper / bare job wall time (target <= 1.01): what the
  meters' sampling threads cost the job;
* ``start_stop_s`` = wrapper wall time - job wall time: probing and starting the meters, writing
  the record, stopping the meters and printing the summary (paid once per run).

Usage::

    python benchmarks/wrapper_overhead.py --job-seconds 60 [--repeats 1] [--meter NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = """
import json, sys, time
n = int(sys.argv[1])
t = time.perf_counter()
x = 0
for i in range(n):
    x = (x * 1103515245 + 12345) & 0xFFFFFFFF
elapsed = time.perf_counter() - t
with open(sys.argv[2], "w") as f:
    json.dump({"job_s": elapsed, "x": x}, f)
"""


def _job(argv_prefix: list[str], iterations: int, out: Path, env: dict) -> tuple[float, float]:
    """(job seconds as timed by the job, total wall seconds of the command)."""
    t = time.perf_counter()
    subprocess.run(
        [*argv_prefix, sys.executable, "-c", JOB, str(iterations), str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    return json.loads(out.read_text())["job_s"], wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job-seconds", type=float, default=60.0, help="bare job length (s)")
    ap.add_argument("--repeats", type=int, default=1, help="bare/wrapped pairs (median kept)")
    ap.add_argument("--meter", action="append", default=None, help="meter(s) to use")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="greentrain-bench-"))
    env = dict(os.environ, GREENTRAIN_STORE=str(tmp / "bench.db"))
    out = tmp / "job.json"
    calib_n = 2_000_000
    calib_s, _ = _job([], calib_n, out, env)
    iterations = max(1, int(calib_n * args.job_seconds / calib_s))
    wrapper = [sys.executable, "-m", "greentrain", "run", "--name", "wrapper-overhead"]
    for name in args.meter or []:
        wrapper += ["--meter", name]
    wrapper.append("--")

    bare_jobs, wrapped_jobs, latencies, bare_walls = [], [], [], []
    for _ in range(args.repeats):
        job_s, wall_s = _job([], iterations, out, env)
        bare_jobs.append(job_s)
        bare_walls.append(wall_s)
        job_s, wall_s = _job(wrapper, iterations, out, env)
        wrapped_jobs.append(job_s)
        latencies.append(wall_s - job_s)

    from greentrain.store import Store

    with Store(tmp / "bench.db") as st:
        last = st.list_runs()[-1]
    bare, wrapped = statistics.median(bare_jobs), statistics.median(wrapped_jobs)
    bare_overhead = statistics.median(w - j for w, j in zip(bare_walls, bare_jobs, strict=True))
    figures = {
        "job_seconds_target": args.job_seconds,
        "repeats": args.repeats,
        "bare_job_s": bare,
        "wrapped_job_s": wrapped,
        "slowdown": wrapped / bare,
        "start_stop_s": statistics.median(latencies),
        "python_startup_s": bare_overhead,
        "meters": [m["meter"] for m in last["meters"] if m["available"] and not m["error"]],
        "energy": {d: e.get("source") for d, e in last["energy"].items()},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"bare job        {bare:8.2f} s")
        print(f"wrapped job     {wrapped:8.2f} s  (meters: {', '.join(figures['meters'])})")
        print(f"slowdown        {figures['slowdown']:8.4f}  (target <= 1.01)")
        print(
            f"start+stop      {figures['start_stop_s']:8.2f} s  "
            f"(bare python start/exit: {bare_overhead:.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

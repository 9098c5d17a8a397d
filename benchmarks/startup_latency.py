"""Fixed cost of ``greentrain run``: wall time of ``greentrain run -- true`` against bare ``true``.

Each configuration runs ``--repeats`` times, interleaved (so load drift hits all alike), and the
median is kept (bytecode caches on, whatever ``PYTHONDONTWRITEBYTECODE`` says). Besides the wall
time, the CPU time (user + system, of the command and the children it waited for) is kept: on a
loaded machine the wall time mostly measures the wait for a core, the CPU time much less.
Configurations: bare ``true``; ``python -c pass`` (the interpreter alone);
``python -c "import greentrain.cli"`` (the CLI's imports); ``greentrain --help`` (every
sub-command's module imported, as the help lists them); ``greentrain run`` with every
default meter; and with each meter alone. The fixed cost is the wrapped median minus bare
``true``. Slow-starting meters (CodeCarbon, Zeus) start beside the job and join it when ready,
so their start-up is not part of the fixed cost; a job shorter than their start records them
as not measured, with the reason.

Usage::

    python benchmarks/startup_latency.py [--repeats 7] [--json] [--only estimate --only default]

``--only TEXT`` keeps the configurations whose name contains TEXT (bare ``true`` is always
kept: the fixed cost is measured against it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METERS = ("nvml", "zeus", "codecarbon", "rapl", "estimate")


# Bytecode caches on, as in any installed copy: with PYTHONDONTWRITEBYTECODE set (as on some
# CI machines) every run would compile greentrain's modules anew and measure the compiler.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall_and_cpu(argv: list[str]) -> tuple[float, float]:
    """Seconds of wall time and of CPU time (user + system) that ``argv`` took."""
    cpu, t = _children_cpu_s(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t, _children_cpu_s() - cpu


def configurations(store: Path) -> dict[str, list[str]]:
    run = [sys.executable, "-m", "greentrain", "run", "--store", str(store)]
    configs = {
        "true": ["true"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "import greentrain.cli": [sys.executable, "-c", "import greentrain.cli"],
        "greentrain --help": [sys.executable, "-m", "greentrain", "--help"],
        "greentrain run (default meters)": [*run, "--", "true"],
    }
    for meter in METERS:
        configs[f"greentrain run --meter {meter}"] = [*run, "--meter", meter, "--", "true"]
    return configs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="runs per configuration (median)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--only", action="append", default=[], help="keep configurations with TEXT")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        configs = configurations(Path(tmp) / "s.db")
        if args.only:
            keep = [n for n in configs if n == "true" or any(t in n for t in args.only)]
            configs = {n: configs[n] for n in keep}
        for argv_ in configs.values():  # warm file caches once, untimed
            _wall_and_cpu(argv_)
        walls: dict[str, list[float]] = {name: [] for name in configs}
        cpus: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, argv_ in configs.items():
                wall, cpu = _wall_and_cpu(argv_)
                walls[name].append(wall)
                cpus[name].append(cpu)
    medians = {name: statistics.median(v) for name, v in walls.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpus.items()}
    bare = medians["true"]
    result = {
        "repeats": args.repeats,
        "median_wall_s": medians,
        "fixed_cost_s": {n: m - bare for n, m in medians.items() if n.startswith("greentrain")},
        "median_cpu_s": cpu_medians,
        "load_average_1min": os.getloadavg()[0],
        "method": "median wall time of each command, interleaved; fixed cost = minus bare true; "
        "CPU = user + system time of the command and its waited-for children",
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"load average (1 min) at the end: {result['load_average_1min']:.1f}")
    print("| command | median wall (s) | fixed cost (s) | median CPU, user + system (s) |")
    print("|---|---:|---:|---:|")
    for name, m in medians.items():
        cost = result["fixed_cost_s"].get(name)
        cost_text = "" if cost is None else f"{cost:.3f}"
        print(f"| `{name}` | {m:.3f} | {cost_text} | {cpu_medians[name]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixed cost of ``greentrain run``: wall time of ``greentrain run -- true`` against bare ``true``.

Each configuration runs ``--repeats`` times, interleaved (so load drift hits all alike), and the
median is kept (bytecode caches on, whatever ``PYTHONDONTWRITEBYTECODE`` says).
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


def _wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


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
            _wall(argv_)
        walls: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, argv_ in configs.items():
                walls[name].append(_wall(argv_))
    medians = {name: statistics.median(v) for name, v in walls.items()}
    bare = medians["true"]
    result = {
        "repeats": args.repeats,
        "median_wall_s": medians,
        "fixed_cost_s": {n: m - bare for n, m in medians.items() if n.startswith("greentrain")},
        "method": "median wall time of each command, interleaved; fixed cost = minus bare true",
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("| command | median wall (s) | fixed cost (s) |")
    print("|---|---:|---:|")
    for name, m in medians.items():
        cost = result["fixed_cost_s"].get(name)
        print(f"| `{name}` | {m:.3f} | {'' if cost is None else f'{cost:.3f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

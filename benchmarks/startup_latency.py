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
        [--variant LABEL=PYTHON[:TREE] ...]

``--only TEXT`` keeps the configurations whose name contains TEXT (bare ``true`` is always
kept: the fixed cost is measured against it). ``--variant`` (repeatable) measures each
configuration with another interpreter (e.g. one with another typer) and, with ``:TREE``,
greentrain imported from another source tree (``PYTHONPATH=TREE``, run outside the checkout),
all variants interleaved in each round; without it, this interpreter and its greentrain.
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
from typing import NamedTuple

METERS = ("nvml", "zeus", "codecarbon", "rapl", "estimate")


# Bytecode caches on, as in any installed copy: with PYTHONDONTWRITEBYTECODE set (as on some
# CI machines) every run would compile greentrain's modules anew and measure the compiler.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Variant(NamedTuple):
    """An interpreter, and optionally the source tree greentrain is imported from."""

    label: str
    python: str
    tree: str | None = None

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``LABEL=PYTHON[:TREE]``."""
        label, sep, rest = text.partition("=")
        if not sep or not label or not rest:
            raise argparse.ArgumentTypeError(f"{text!r}: write LABEL=PYTHON[:TREE]")
        python, _, tree = rest.partition(":")
        if os.sep in python:  # a path: absolute, as the runs start outside this directory
            python = os.path.abspath(python)  # not resolved: a venv's python is a link
        return cls(label, python, str(Path(tree).resolve()) if tree else None)


def _wall_and_cpu(argv: list[str], tree: str | None = None) -> tuple[float, float]:
    """Seconds of wall time and of CPU time (user + system) that ``argv`` took."""
    env, cwd = ENV, None
    if tree is not None:  # outside the checkout, so that the current directory does not win
        env, cwd = {**ENV, "PYTHONPATH": tree}, tempfile.gettempdir()
    cpu, t = _children_cpu_s(), time.perf_counter()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    return time.perf_counter() - t, _children_cpu_s() - cpu


def configurations(store: Path, python: str = sys.executable) -> dict[str, list[str]]:
    run = [python, "-m", "greentrain", "run", "--store", str(store)]
    configs = {
        "true": ["true"],
        "python -c pass": [python, "-c", "pass"],
        "import greentrain.cli": [python, "-c", "import greentrain.cli"],
        "greentrain --help": [python, "-m", "greentrain", "--help"],
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
    ap.add_argument(
        "--variant", action="append", default=[], type=Variant.parse,
        help="LABEL=PYTHON[:TREE]: also measure with this interpreter (and source tree)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        configs: dict[str, tuple[list[str], str | None]] = {}
        for i, variant in enumerate(args.variant or [Variant("", sys.executable)]):
            prefix = f"{variant.label}: " if variant.label else ""
            store = Path(tmp) / f"s{i}.db"  # a store each: another tree may have another schema
            for name, argv_ in configurations(store, variant.python).items():
                if name == "true":
                    configs[name] = (argv_, None)
                elif not args.only or any(t in name for t in args.only):
                    configs[prefix + name] = (argv_, variant.tree)
        for argv_, tree in configs.values():  # warm file and bytecode caches once, untimed
            _wall_and_cpu(argv_, tree)
        walls: dict[str, list[float]] = {name: [] for name in configs}
        cpus: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, (argv_, tree) in configs.items():
                wall, cpu = _wall_and_cpu(argv_, tree)
                walls[name].append(wall)
                cpus[name].append(cpu)
    medians = {name: statistics.median(v) for name, v in walls.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpus.items()}
    bare = medians["true"]
    result = {
        "repeats": args.repeats,
        "median_wall_s": medians,
        "fixed_cost_s": {n: m - bare for n, m in medians.items() if "greentrain " in n},
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

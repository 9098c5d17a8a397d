"""The GPU runbook: pack here, run on the lent GPU machine, collect here. See docs/gpu-runbook.md.

    python benchmarks/gpu/runbook.py pack                 # wheels the machine lacks -> .gpu-wheels/
    python benchmarks/gpu/runbook.py run --out "$OUT"     # on the GPU machine: 9 minutes at most
    python benchmarks/gpu/runbook.py collect DIR_OR_TAR   # -> reports/gpu-<model>/ + where-table
    python benchmarks/gpu/runbook.py run --simulate-gpu-machine --out /tmp/o   # CPU, CI
    python benchmarks/gpu/runbook.py plan                 # the stages, deadlines, commands

``run`` installs the carried wheels (``pip --no-index --target``), then runs the stages of
:mod:`gpu_plan` in priority order, each under its own deadline, publishing ``gpu-run.tar.gz``
and ``summary.md`` into ``--out`` after every stage (:mod:`gpu_runner`). Exit code 0 when every
non-optional stage that ran is ok, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import gpu_machine  # noqa: E402
import gpu_plan  # noqa: E402
import gpu_runner  # noqa: E402
import gpu_wheels  # noqa: E402

DEFAULT_BUDGET_S = 510.0  # of the first call's 9 minutes: 30 s for start-up and the transfer


def _env(site: Path, simulate: bool, shim: Path) -> dict:
    base = dict(os.environ)
    base["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(ROOT)] + ([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])
    )
    if simulate:
        base = gpu_machine.hiding_env(shim, site, base)
    base.update(PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    return base


def _chosen_stages(args: argparse.Namespace) -> list[gpu_plan.Stage]:
    stages = gpu_plan.simulated_stages() if args.simulate_gpu_machine else gpu_plan.gpu_stages()
    if args.stages:
        wanted = args.stages.split(",")
        unknown = sorted(set(wanted) - {s.name for s in stages})
        if unknown:
            raise ValueError(f"no stage {', '.join(unknown)}; see `runbook.py plan`")
        stages = [s for s in stages if s.name in wanted]
    if args.no_optional:
        stages = [s for s in stages if not s.optional]
    return stages


def cmd_run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    gpu_runner.exit_on_sigterm()
    try:
        stages = _chosen_stages(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or os.environ.get("OUT") or "gpu-out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu-runbook-"))  # removed at the end
    try:
        work = Path(args.work).resolve() if args.work else scratch / "work"
        work.mkdir(parents=True, exist_ok=True)
        site = Path(args.site).resolve() if args.site else scratch / "site"
        status = {
            "plan": "simulated GPU machine (CPU)" if args.simulate_gpu_machine else "gpu",
            "machine": platform.node(),
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": shlex.join([sys.executable, *sys.argv]),
            "python": sys.executable,
        }
        status["install"] = gpu_wheels.install(Path(args.wheels).resolve(), site)
        print(f"[runbook] wheels: {status['install']['status']} {status['install']['wheels']}")
        env = _env(site, args.simulate_gpu_machine, scratch / "shim")
        env.setdefault("GREENTRAIN_STORE", str(work / "greentrain.db"))
        budget = args.budget_s - (time.monotonic() - t0)
        status = gpu_runner.run_plan(stages, work=work, out=out, budget_s=budget, env=env,
                                     cwd=ROOT, py=sys.executable, status=status)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(gpu_runner.summary(status))
    required = [r for r, s in zip(status["stages"], stages, strict=True) if not s.optional]
    return 0 if all(r["status"] == "ok" for r in required) else 1


def cmd_pack(args: argparse.Namespace) -> int:
    try:
        manifest = gpu_wheels.pack(Path(args.dest))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for w in manifest["wheels"]:
        print(f"{w['file']}  {w['bytes'] / 2**20:.2f} MiB")
    print(f"{manifest['bytes'] / 2**20:.1f} MiB in {args.dest}; name it in the device call's carry")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import gpu_collect

    try:
        dest = gpu_collect.collect(Path(args.source), Path(args.reports))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((dest / "README.md").read_text())
    print(f"written: {dest}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    stages = gpu_plan.simulated_stages() if args.simulate_gpu_machine else gpu_plan.gpu_stages()
    plan = [
        {
            "name": s.name,
            "what": s.what,
            "limit_s": s.limit_s,
            "min_s": s.min_s,
            "optional": s.optional,
            "command": shlex.join(s.argv),
        }
        for s in stages
    ]
    print(json.dumps(plan, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the stages (on the GPU machine)")
    r.add_argument("--out", help="output folder (default $OUT, else ./gpu-out)")
    r.add_argument("--work", help="work folder (default: a new temporary folder)")
    r.add_argument("--wheels", default=str(gpu_wheels.DEFAULT_DIR), help="carried wheels")
    r.add_argument("--site", help="where to install them (default: a temporary folder)")
    r.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="whole run, seconds")
    r.add_argument("--stages", help="comma list of stage names (default: all, in order)")
    r.add_argument("--no-optional", action="store_true", help="only the priority stages 1-4")
    r.add_argument(
        "--simulate-gpu-machine",
        action="store_true",
        help="CPU stand-in: hide what the GPU image lacks, run the CPU path",
    )
    r.set_defaults(func=cmd_run)
    k = sub.add_parser("pack", help="download the wheels the GPU machine lacks")
    k.add_argument("--dest", default=str(gpu_wheels.DEFAULT_DIR))
    k.set_defaults(func=cmd_pack)
    c = sub.add_parser("collect", help="output folder or gpu-run.tar.gz -> reports/gpu-<model>/")
    c.add_argument("source")
    c.add_argument("--reports", default=str(ROOT / "reports"))
    c.set_defaults(func=cmd_collect)
    s = sub.add_parser("plan", help="print the stages as JSON")
    s.add_argument("--simulate-gpu-machine", action="store_true")
    s.set_defaults(func=cmd_plan)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""Every GPU figure issue 12 asks for, in one script: run it on a machine with an NVIDIA GPU.

    python benchmarks/gpu_study.py                      # all stages, into reports/gpu-<gpu>/
    python benchmarks/gpu_study.py --stages resnet50,ddpm --quick
    python benchmarks/gpu_study.py --list               # the stages and what each measures

Each stage is one ``greentrain bench ssprop`` (or ``pytest``, or ``greentrain sweep``)
subprocess, so one failing stage does not stop the others; its JSON result, Markdown table and
log go to the output folder, and the folder's ``README.md`` is written anew at the end with
the GPU's model, driver, torch and CUDA versions, each stage's command and status, and the
table of where ssProp saves energy (``greentrain bench where``). All ratios are against the
fastest dense configuration (dense in both memory layouts, the same compile mode and the same
fused Adam), medians of paired per-round ratios; energy from NVML's total-energy counter over
blocks of steps.

Targets (issue 12), checked and printed at the end: ResNet-50 224² batch 64, bf16,
channels_last, CUDA graphs -- step <= 0.95x, J/step <= 0.94x, per-layer conv backward GPU time
<= 0.65x, bar schedule <= 0.975x; CIFAR ResNet-18 batch 128 -- step <= 0.93x; DDPM UNet base
128 at 64² -- step <= 0.82x, J/step <= 0.80x; drop 0 within 1% everywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PY = sys.executable
GT = [PY, "-m", "greentrain"]
GRAPHS = ["--device", "cuda", "--dtype", "bfloat16", "--channels-last", "--cuda-graphs"]
EAGER = ["--device", "cuda", "--dtype", "bfloat16", "--channels-last"]


@dataclass
class Stage:
    """One measurement: a command, what it is for, and the targets its result is held to."""

    name: str
    what: str
    argv: list[str]
    minutes: float  # rough wall time on an H100, compile included
    targets: dict[str, float] = field(default_factory=dict)
    bench: bool = True


def _bench(*args: str, quick: bool) -> list[str]:
    steps = ["--steps", "10", "--warmup", "3", "--energy-rounds", "3"] if quick else [
        "--steps", "30", "--warmup", "5", "--energy-rounds", "5"]  # fmt: skip
    return [*GT, "bench", "ssprop", *args, *steps, "--layer-reps", "10", "--json", "--quiet"]


def stages(quick: bool) -> list[Stage]:
    r50 = ["--model", "resnet50", "--stem", "imagenet", "--input", "3,224,224",
           "--batch-size", "64", "--drops", "0,0.8"]  # fmt: skip
    r18 = ["--model", "resnet18", "--input", "3,32,32", "--batch-size", "128", "--drops", "0,0.8"]
    unet = ["--model", "ddpm", "--input", "3,64,64", "--unet-base", "128", "--batch-size", "64",
            "--drops", "0,0.8"]  # fmt: skip
    return [
        Stage(
            "kernels",
            "ssprop's Triton kernels and custom ops on the GPU (pytest)",
            [
                PY,
                "-m",
                "pytest",
                "-q",
                "tests/test_ssprop_kernels.py",
                "tests/test_ssprop_compile.py",
                "tests/test_ssprop_conv.py",
                "tests/test_ssprop_variants.py",
            ],
            2,
            bench=False,
        ),  # fmt: skip
        Stage(
            "resnet50",
            "ResNet-50 224² b64 bf16 channels_last, CUDA graphs; bar schedule",
            _bench(*r50, *GRAPHS, "--schedule-check", quick=quick),
            6,
            {"step": 0.95, "energy": 0.94, "layer_backward": 0.65, "bar": 0.975, "zero": 1.01},
        ),
        Stage(
            "resnet50-aten",
            "the same with the aten backend (no Triton kernels)",
            _bench(*r50, *GRAPHS, "--backend", "aten", "--no-layers", quick=quick),
            4,
        ),
        Stage(
            "resnet50-eager",
            "ResNet-50 eager (no target); energy per phase",
            _bench(*r50, *EAGER, "--phases", "--no-layers", quick=quick),
            3,
        ),
        Stage(
            "resnet18",
            "CIFAR ResNet-18 b128 bf16 channels_last, CUDA graphs",
            _bench(*r18, *GRAPHS, "--schedule-check", quick=quick),
            3,
            {"step": 0.93, "zero": 1.01},
        ),
        Stage(
            "ddpm",
            "the paper's DDPM UNet (base 128) at 64², CUDA graphs",
            _bench(*unet, *GRAPHS, "--no-layers", quick=quick),
            6,
            {"step": 0.82, "energy": 0.80, "zero": 1.01},
        ),
        Stage(
            "epochs",
            "joules per epoch of dense, constant 0.8 and bar 0.8 (CIFAR-shaped data)",
            [
                *GT,
                "sweep",
                "--dataset",
                "synthetic-cifar10",
                "--drop",
                "0,0.8",
                "--schedule",
                "constant,bar",
                "--epochs",
                "2" if quick else "4",
                "--device",
                "cuda",
                "--no-progress",
                "--meter",
                "nvml",
                "--sweep-id",
                "gpu-study-epochs",
            ],
            4,
            bench=False,
        ),  # fmt: skip
    ]


def _ratio(result: dict, pick, metric: str) -> float | None:
    v = next((v for v in result["variants"] if pick(v)), None)
    r = (v or {}).get("ratios_vs_fastest_dense", {}).get(metric) if v else None
    if not r:
        return None
    return r["mean"] if v["kind"] == "schedule" else r["median"]


def check(stage: Stage, result: dict) -> list[str]:
    """One line per target: measured figure, target, met or not."""
    lines = []
    sparse = lambda v: v["kind"] == "sparse" and v["drop_rate"] == 0.8  # noqa: E731
    figures = {
        "step": _ratio(result, sparse, "step_time"),
        "energy": _ratio(result, sparse, "energy"),
        "bar": _ratio(result, lambda v: v["kind"] == "schedule", "step_time"),
        "zero": _ratio(
            result, lambda v: v["kind"] == "sparse" and v["drop_rate"] == 0.0, "step_time"
        ),  # fmt: skip
    }
    total = result.get("layers_total") or {}
    layer = next((t for t in total.get("sparse", []) if t["drop_rate"] == 0.8), {})
    figures["layer_backward"] = layer.get("ratio_vs_fastest_dense")
    for key, target in stage.targets.items():
        value = figures.get(key)
        verdict = "n/a" if value is None else ("met" if value <= target else "NOT met")
        shown = "-" if value is None else f"{value:.3f}"
        lines.append(f"{stage.name} {key}: {shown}x (target <= {target}x) {verdict}")
    return lines


def gpu_slug() -> str:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    name = out.splitlines()[0].split(",")[0].strip()
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="output folder (default reports/gpu-<gpu>)")
    p.add_argument("--stages", default=None, help="comma list of stages (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer rounds (a first look)")
    p.add_argument("--list", action="store_true", help="list the stages and exit")
    args = p.parse_args(argv)
    plan = stages(args.quick)
    if args.list:
        for s in plan:
            print(f"{s.name:15} ~{s.minutes:g} min  {s.what}")
        return 0
    chosen = plan if not args.stages else [s for s in plan if s.name in args.stages.split(",")]
    if not chosen:
        p.error(f"no such stage in {args.stages!r}; see --list")
    out = Path(args.out or f"reports/gpu-{gpu_slug()}")
    out.mkdir(parents=True, exist_ok=True)
    store = out / "runs.db"
    print(f"{len(chosen)} stages, about {sum(s.minutes for s in chosen):g} min; into {out}")
    done, lines, results = [], [], []
    for s in chosen:
        argv_s = list(s.argv)
        if s.argv[:3] == GT and s.argv[3] in ("bench", "sweep"):
            argv_s += ["--store", str(store)]
        t0 = time.monotonic()
        print(f"[{s.name}] {s.what} ...", flush=True)
        proc = subprocess.run(argv_s, capture_output=True, text=True)
        minutes = (time.monotonic() - t0) / 60
        (out / f"{s.name}.log").write_text(proc.stderr + ("" if s.bench else proc.stdout))
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        if s.bench and proc.returncode == 0:
            result = json.loads(proc.stdout)
            (out / f"{s.name}.json").write_text(json.dumps(result, indent=2))
            md = subprocess.run([*GT, "bench", "where", str(out / f"{s.name}.json"), "--markdown"],
                                capture_output=True, text=True).stdout  # fmt: skip
            (out / f"{s.name}.md").write_text(md)
            results.append(out / f"{s.name}.json")
            lines += check(s, result)
        done.append((s, status, minutes, shlex.join(argv_s)))
        print(f"[{s.name}] {status} in {minutes:.1f} min", flush=True)
    where = ""
    if results:
        where = subprocess.run([*GT, "bench", "where", *map(str, results), "--markdown"],
                               capture_output=True, text=True).stdout  # fmt: skip
        (out / "where-ssprop-saves.md").write_text(where)
    _write_readme(out, done, lines, where)
    print("\n".join(lines))
    return 0 if all(status == "ok" for _, status, _, _ in done) else 1


def _write_readme(out: Path, done, lines: list[str], where: str) -> None:
    query = ["nvidia-smi", "--query-gpu=name,driver_version,power.limit", "--format=csv,noheader"]
    smi = subprocess.run(query, capture_output=True, text=True).stdout
    import torch

    text = [f"# GPU study (issue 12): {smi.strip()}", "",
            f"torch {torch.__version__}, CUDA {torch.version.cuda}; measured "
            f"{time.strftime('%Y-%m-%d')} by `python benchmarks/gpu_study.py`.", "",
            "| stage | status | minutes | command |", "|---|---|---|---|"]  # fmt: skip
    text += [f"| {s.name} | {st} | {m:.1f} | `{cmd}` |" for s, st, m, cmd in done]
    text += ["", "## Targets", ""] + [f"- {line}" for line in lines]
    text += ["", "## Where ssProp saves energy", "", where]
    (out / "README.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    sys.exit(main())

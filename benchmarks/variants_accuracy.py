"""Accuracy of ssprop's opt-in variants against exact ssProp and dense, on real data.

    python benchmarks/variants_accuracy.py --dataset digits --epochs 8 --seeds 0,1,2 --threads 1
    python benchmarks/variants_accuracy.py --dataset mnist --data-dir data --epochs 5 --seeds 0,1,2

Each configuration is one ``python -m greentrain train`` run per seed (the real command, metered
and recorded in ``--store``), ResNet-18 with the CIFAR stem at the dataset's default recipe
(Adam, lr 2e-4, no augmentation): dense; exact ssProp (constant drop 0.8); the paper's bar
schedule (drop 0.8, period 2 epochs); ``--reselect-every 4`` and ``16`` (constant 0.8);
``--min-channels 128`` (constant 0.8). ``--configs`` picks among those and ``min64``
(``--min-channels 64``, not run by default: no ResNet-18 conv has fewer than 64 output channels,
so it is exact ssProp). Every configuration runs on the same seeds, so the same data order and
initial weights. A run already finished in the store (same study, dataset, epochs,
configuration and seed) is reused, so an interrupted study resumes. ``--threads N`` sets the
runs' torch threads (``OMP_NUM_THREADS``): 1 on a shared 2-core machine, where two threads
contending with another process for one core run many times slower.

It writes ``DIR/README.md`` (the table, the command, machine and date), ``DIR/results.json``
(every run's figures) and ``DIR/study.json`` (the command, machine, date and duration of the
invocation that trained the runs: a re-run that only reuses runs re-renders the table and
keeps those). Columns: best test accuracy over the epochs (as the paper reports it) and
final-epoch test accuracy, each mean ± sample std over seeds; analytic backward FLOPs per
iteration by the paper's convention (the runs' logged ``backward_flops_per_iter``, mean over
epochs); wall seconds per epoch (training and evaluation, ``epoch_time_s``), mean over epochs
and seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

STUDY = "ssprop-variants"
SPARSE = ["--drop", "0.8", "--schedule", "constant"]
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "dense": ("dense", ["--drop", "0"]),
    "exact": ("exact ssProp, constant 0.8", SPARSE),
    "bar": ("ssProp bar 0.8 (period 2 epochs)", ["--drop", "0.8", "--schedule", "bar"]),
    "reselect4": ("reselect_every=4, constant 0.8", [*SPARSE, "--reselect-every", "4"]),
    "reselect16": ("reselect_every=16, constant 0.8", [*SPARSE, "--reselect-every", "16"]),
    "min128": ("min_channels=128, constant 0.8", [*SPARSE, "--min-channels", "128"]),
    "min64": ("min_channels=64, constant 0.8", [*SPARSE, "--min-channels", "64"]),
}
DEFAULT_CONFIGS = [c for c in CONFIGS if c != "min64"]


def _tags(dataset: str, epochs: int, config: str, seed: int) -> dict[str, str]:
    return {"study": STUDY, "dataset": dataset, "epochs": str(epochs), "config": config,
            "seed": str(seed)}  # fmt: skip


def train_argv(args: argparse.Namespace, config: str, seed: int) -> list[str]:
    """The ``greentrain train`` command of one configuration and seed."""
    name = f"{STUDY}-{args.dataset}-{config}-s{seed}"
    argv = [sys.executable, "-m", "greentrain", "train", "--model", "resnet18",
            "--dataset", args.dataset, "--epochs", str(args.epochs), "--seed", str(seed),
            "--device", args.device, "--no-progress", "--store", args.store,
            "--meter", args.meter, "--name", name]  # fmt: skip
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    for key, value in _tags(args.dataset, args.epochs, config, seed).items():
        argv += ["--tag", f"{key}={value}"]
    return argv + CONFIGS[config][1]


def finished_run(store: str, tags: dict[str, str]) -> dict | None:
    """The last finished run with ``tags`` in ``store`` (None if none), with its metrics."""
    if not Path(store).exists():
        return None
    from greentrain.store import Store

    with Store(store) as st:
        runs = st.list_runs(status="finished", tags=tags)
        return st.get_run(runs[-1]["id"]) if runs else None


def figures(run: dict) -> dict:
    """Accuracy, FLOPs and time of one stored run (fractions, FLOPs/iteration, seconds)."""
    epochs = [m for m in run["metrics"] if m.get("epoch") is not None and "test_acc" in m]
    final = next(m for m in run["metrics"] if "final_test_acc" in m)
    return {
        "run_id": run["id"],
        "best_test_acc": final["best_test_acc"],
        "final_test_acc": final["final_test_acc"],
        "backward_flops_per_iter": statistics.fmean(m["backward_flops_per_iter"] for m in epochs),
        "epoch_time_s": statistics.fmean(m["epoch_time_s"] for m in epochs),
        "test_acc_per_epoch": [m["test_acc"] for m in epochs],
    }


def _pm(values: list[float], scale: float = 100.0) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def table(results: dict[str, list[dict]]) -> list[str]:
    """The Markdown table: one row per configuration (accuracies in %, over seeds)."""
    exact = results.get("exact")
    dense = results.get("dense")
    ref_best = statistics.fmean(r["best_test_acc"] for r in exact) if exact else None
    ref_flops = dense[0]["backward_flops_per_iter"] if dense else None
    lines = [
        "| configuration | best test acc % | final-epoch test acc % | Δ best vs exact (points) "
        "| bwd GFLOPs/iter | vs dense | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for config, runs in results.items():
        best = [r["best_test_acc"] for r in runs]
        delta = "-" if ref_best is None else f"{(statistics.fmean(best) - ref_best) * 100:+.2f}"
        flops = statistics.fmean(r["backward_flops_per_iter"] for r in runs)
        ratio = f"{flops / ref_flops:.3f}×" if ref_flops else "-"
        seconds = statistics.fmean(r["epoch_time_s"] for r in runs)
        lines.append(
            f"| {CONFIGS[config][0]} | {_pm(best)} | "
            f"{_pm([r['final_test_acc'] for r in runs])} | {delta} | {flops / 1e9:.4f} | "
            f"{ratio} | {seconds:.2f} |"
        )
    return lines


def machine() -> str:
    """CPU model, cores and torch threads of this machine."""
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    threads = torch.get_num_threads()
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} on {threads} thread(s), "
        f"Python {platform.python_version()}"
    )


def data_sizes(args: argparse.Namespace) -> tuple[str, int]:
    """``"train/val/test"`` image counts of the dataset as the job splits it, and the test count."""
    from greentrain.jobs.config import TrainConfig
    from greentrain.jobs.data import load_for
    from greentrain.jobs.recipes import resolve

    cfg = TrainConfig(dataset=args.dataset, data_dir=args.data_dir or "data")
    data = load_for(resolve(cfg))
    n_val = len(data.val) if data.val is not None else 0
    return f"{len(data.train)}/{n_val}/{len(data.test)}", len(data.test)


def per_seed(results: dict[str, list[dict]]) -> list[str]:
    """Best and final test accuracy of every run, in %, one row per configuration."""
    seeds = [r["seed"] for r in next(iter(results.values()))]
    lines = ["| configuration | " + " | ".join(f"seed {s}: best / final" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]  # fmt: skip
    for config, runs in results.items():
        cells = [f"{r['best_test_acc'] * 100:.2f} / {r['final_test_acc'] * 100:.2f}" for r in runs]
        lines.append(f"| {CONFIGS[config][0]} | " + " | ".join(cells) + " |")
    return lines


def write_report(args: argparse.Namespace, results: dict[str, list[dict]], study: dict) -> Path:
    """``DIR/README.md`` and ``DIR/results.json``; returns the README's path. ``study``: the
    command, machine, date, minutes and load averages of the invocation that trained the runs."""
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    sizes, n_test = data_sizes(args)
    seeds = ",".join(str(s) for s in args.seeds)
    text = [
        f"# ssprop variants: accuracy on {args.dataset} (ResNet-18, CIFAR stem)",
        "",
        f"- Command: `{study['command']}`",
        f"- Machine: {study['machine']}, device {args.device}; 1-minute load average "
        f"{study['load_before']:.2f} before the study, {study['load_after']:.2f} after.",
        f"- Date: {study['date']}; the study took {study['minutes']:.1f} min.",
        f"- Recipe: the dataset's default (Adam, lr 2e-4, no augmentation), {args.epochs} "
        f"epochs, seeds {seeds}; every configuration on the same seeds. Train/val/test images: "
        f"{sizes}, so one test image is {100 / n_test:.2f} points of accuracy.",
        f"- Runs: `{args.store}` (tags `study={STUDY}`, `config`, `seed`); per run in "
        "`results.json`.",
        "",
        *table(results),
        "",
        "- Accuracies: mean ± sample std over the seeds, in %. *Best* is the highest test "
        "accuracy over the epochs (as the paper reports); *final-epoch* is the last epoch's.",
        "- bwd GFLOPs/iter: analytic backward FLOPs per iteration, the paper's convention "
        "(convolutions and BatchNorm; `ssprop.flops`), the runs' logged "
        "`backward_flops_per_iter`, mean over epochs.",
        "- s/epoch: wall seconds of one epoch's training and evaluation (`epoch_time_s`), mean "
        "over epochs and seeds; the runs ran one after another on the same machine.",
        "",
        "Per seed (test accuracy %, best / final epoch):",
        "",
        *per_seed(results),
    ]
    path = out / "README.md"
    path.write_text("\n".join(text) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (digits default 10)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    p.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help="comma list of " + ", ".join(CONFIGS)
    )
    p.add_argument("--out", default="reports/ssprop-variants", help="output folder")
    p.add_argument("--store", default=None, help="run store (default OUT/runs.db)")
    p.add_argument("--data-dir", default=None, help="dataset root (mnist)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--meter", default="estimate", help="greentrain meter for the runs")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads per run (default: torch's)"
    )
    args = p.parse_args(argv)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the runs' torch threads
    args.seeds = [int(s) for s in args.seeds.split(",")]
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    args.store = args.store or str(Path(args.out) / "runs.db")
    command = shlex.join(["python", "benchmarks/variants_accuracy.py", *(argv or sys.argv[1:])])
    start, load_before = time.monotonic(), os.getloadavg()[0]
    results: dict[str, list[dict]] = {}
    trained = 0
    for config in configs:
        for seed in args.seeds:
            tags = _tags(args.dataset, args.epochs, config, seed)
            run = finished_run(args.store, tags)
            if run is None:
                t0 = time.monotonic()
                print(f"[{config} seed {seed}] training ...", flush=True)
                proc = subprocess.run(train_argv(args, config, seed))
                if proc.returncode != 0:
                    print(f"[{config} seed {seed}] failed (exit {proc.returncode})", flush=True)
                    return 1
                run = finished_run(args.store, tags)
                trained += 1
                print(f"[{config} seed {seed}] {time.monotonic() - t0:.0f} s", flush=True)
            results.setdefault(config, []).append({"seed": seed, **figures(run)})
    study_file = Path(args.out) / "study.json"
    if trained or not study_file.exists():  # a re-render keeps the training invocation's facts
        study = {
            "command": command,
            "machine": machine(),
            "runs_trained": trained,
            "date": datetime.date.today().isoformat(),
            "load_before": load_before,
            "minutes": (time.monotonic() - start) / 60,
            "load_after": os.getloadavg()[0],
        }
        study_file.write_text(json.dumps(study, indent=2) + "\n")
    readme = write_report(args, results, json.loads(study_file.read_text()))
    print("\n".join(table(results)))
    print(f"written: {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

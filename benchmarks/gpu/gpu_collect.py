"""Turn what came back from the GPU machine into ``reports/gpu-<model>/`` and its where-table.

The source is the output folder (holding ``gpu-run.tar.gz``), the archive itself, or an
unpacked work folder (holding ``status.json``). Written into ``reports/gpu-<model>/``: every
stage's JSON and log, each bench result rendered as Markdown (``<stage>.md``),
``where-ssprop-saves.md`` (the where-table of the stages that are rows of it) and ``README.md``:
the GPU's model, driver and versions, each stage's status, time and command, the CUDA test
counts, and each target held against the 95% interval of its figure ("met" only when the
whole interval is at or under the target).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from gpu_plan import gpu_stages, simulated_stages
from gpu_runner import ARCHIVE, STATUS

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _unpack(source: Path) -> Path:
    """The work folder inside ``source`` (an output folder, an archive or a work folder)."""
    if source.is_dir() and (source / STATUS).exists():
        return source
    archive = source / ARCHIVE if source.is_dir() else source
    if not archive.is_file():
        raise ValueError(f"{source} holds neither {STATUS} nor {ARCHIVE}")
    dest = Path(tempfile.mkdtemp(prefix="gpu-collect-"))
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    work = dest / "gpu-run"
    if not (work / STATUS).exists():
        raise ValueError(f"{archive} has no gpu-run/{STATUS}")
    return work


def slug(versions: dict | None, plan: str) -> str:
    """``h100-80gb-hbm3`` from ``NVIDIA H100 80GB HBM3``; ``cpu-simulated`` off a GPU."""
    gpu = (versions or {}).get("gpu") or {}
    if not gpu.get("available"):
        return "cpu-simulated" if plan.startswith("simulated") else "no-gpu"
    name = str(gpu.get("name", "unknown")).lower().replace("nvidia", "")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "unknown"


def _variant(result: dict, kind: str, drop: float | None) -> dict | None:
    return next(
        (
            v
            for v in result.get("variants", [])
            if v.get("kind") == kind and v.get("drop_rate") == drop
        ),
        None,
    )


def figures(result: dict) -> dict[str, tuple[float | None, dict | None]]:
    """Target figures of a bench result: (ratio, 95% interval) each."""

    def ratio(v: dict | None, table: str, metric: str):
        r = ((v or {}).get(table) or {}).get(metric) or {}
        return r.get("median"), r.get("interval")

    sparse, zero = _variant(result, "sparse", 0.8), _variant(result, "sparse", 0.0)
    total = next(
        (
            t
            for t in ((result.get("layers_total") or {}).get("sparse") or [])
            if t.get("drop_rate") == 0.8
        ),
        None,
    )
    rounds = (total or {}).get("round_ratio") or {}
    return {
        "step": ratio(sparse, "ratios_vs_fastest_dense", "step_time"),
        "energy": ratio(sparse, "ratios_vs_fastest_dense", "energy"),
        "zero": ratio(zero, "ratios", "step_time"),
        # the median of per-repetition ratios of summed layer seconds, with its interval
        "layer_backward": (
            rounds.get("median", (total or {}).get("ratio")),
            rounds.get("interval"),
        ),
    }


def judge(value: float | None, interval: dict | None, target: float) -> str:
    """``met`` / ``not met`` / ``undecided`` from the interval against an upper bound."""
    if value is None:
        return "n/a (not measured)"
    if not interval:
        return ("met" if value <= target else "not met") + " (point estimate, no interval)"
    if interval["high"] <= target:
        return "met"
    if interval["low"] > target:
        return "not met"
    return "undecided: the interval spans the target"


def _cell(text: str) -> str:
    """Text from a run (a test's name or message) as one safe Markdown line."""
    first = (str(text).strip().splitlines() or [""])[0]
    return first.replace("|", "/").replace("`", "'")[:300]


def _fmt(value: float | None, interval: dict | None) -> str:
    if value is None:
        return "-"
    if not interval:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval['low']:.3f}-{interval['high']:.3f}]"


def _header(status: dict, versions: dict | None) -> list[str]:
    v = versions or {}
    gpu = v.get("gpu") or {}
    name = gpu.get("name") if gpu.get("available") else "no GPU (" + status.get("plan", "?") + ")"
    mem = gpu.get("memory_bytes")
    return [
        f"# GPU figures: {name}",
        "",
        f"Measured {status.get('started_utc', '?')} by `python benchmarks/gpu/runbook.py run` "
        f"({status.get('plan')}), collected with `python benchmarks/gpu/runbook.py collect`.",
        "",
        f"- GPU: {name}; driver {gpu.get('driver', '-')}; compute capability "
        f"{gpu.get('capability', '-')}; {mem / 2**30:.0f} GiB; "
        f"{gpu.get('multiprocessors', '-')} SMs; power limit {gpu.get('power_limit_w', '-')} W"
        if mem
        else f"- GPU: {name}",
        f"- Python {v.get('python', '?')}, torch {v.get('torch', '?')}, CUDA {v.get('cuda')}, "
        f"cuDNN {v.get('cudnn')}, Triton {(v.get('packages') or {}).get('triton')}; ssprop "
        f"backend auto = {v.get('ssprop_backend_auto')}; {v.get('cpus')} CPUs",
        f"- carried wheels: {status.get('install', {}).get('status')} "
        f"{status.get('install', {}).get('wheels')}",
    ]


def collect(source: Path, reports: Path) -> Path:
    """Write ``reports/gpu-<model>/`` from ``source``; returns that folder."""
    from greentrain.bench import to_markdown
    from greentrain.bench.where import markdown as where_markdown

    work = _unpack(source)
    status = json.loads((work / STATUS).read_text())
    versions_path = work / "versions.json"
    versions = json.loads(versions_path.read_text()) if versions_path.exists() else None
    dest = reports / f"gpu-{slug(versions, status.get('plan', ''))}"
    dest.mkdir(parents=True, exist_ok=True)
    plan = {s.name: s for s in (*gpu_stages(), *simulated_stages())}
    lines = _header(status, versions)
    lines += [
        "",
        "## Stages",
        "",
        "| stage | status | s | deadline s | command |",
        "|---|---|---|---|---|",
    ]
    where_results, targets, tests = [], [], []
    for record in status["stages"]:
        name = record["name"]
        kept = (".json", ".log", ".xml") if record.get("json") else (".out", ".log", ".xml")
        for suffix in kept:
            if (work / f"{name}{suffix}").exists():
                shutil.copy2(work / f"{name}{suffix}", dest / f"{name}{suffix}")
        command = str(record.get("command", "")).replace(status.get("python", "\0"), "python")
        lines.append(
            f"| {name} | {_cell(record['status'])} | {record.get('seconds')} | "
            f"{record.get('deadline_s')} | `{_cell(command)}` |"
        )
        if not record.get("json"):
            continue
        result = json.loads((work / record["json"]).read_text())
        stage = plan.get(name)
        if str(result.get("schema", "")).startswith("greentrain.bench.ssprop/"):
            (dest / f"{name}.md").write_text(to_markdown(result, command=command))
            if stage and stage.where:
                where_results.append(result)
            figs = figures(result)
            for key, bound in (stage.targets if stage else {}).items():
                value, interval = figs[key]
                targets.append(
                    f"| {name} | {key} | {_fmt(value, interval)} | ≤ {bound} | "
                    f"{judge(value, interval, bound)} |"
                )
        elif "tests" in result:
            tests.append("")
            tests.append(
                f"{name}: {result['passed']} passed, {result['failures']} failed, "
                f"{result['errors']} errors, {result['skipped']} skipped of "
                f"{result['tests']}."
            )
            tests += [
                f"- {_cell(p['test'])}: {_cell(p.get('failure', p.get('error', '')))}"
                for p in result["problems"]
            ]
    lines += tests
    lines += [
        "",
        "## Targets (issue 26)",
        "",
        "Ratios are medians of paired per-round ratios with their 95% interval; drop 0 "
        "against dense in the same layout; per-layer backward = sum over convs (interval "
        "from per-repetition sums). A target is met only when the whole interval is at or "
        "under it.",
        "",
        "| stage | figure | ratio [95% CI] | target | verdict |",
        "|---|---|---|---|---|",
        *targets,
    ]
    where = where_markdown(where_results) if where_results else "No where-table row ran.\n"
    (dest / "where-ssprop-saves.md").write_text(where)
    lines += ["", "## Where ssProp saves energy", "", where]
    (dest / "README.md").write_text("\n".join(lines).rstrip() + "\n")
    return dest

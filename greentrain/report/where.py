"""Where ssProp saves energy and where it does not: one row per benchmarked workload.

A row compares a model's ssProp variants with the *fastest* dense configuration of the same
benchmark (``greentrain bench ssprop``): constant drop 0.8 (step time, joules per step where
NVML measured them, backward time), the paper's bar schedule (its mean step ratio), and drop 0
(the native path, which should cost nothing). The verdict compares the drop-0.8 figure with
1 +/- :data:`TOLERANCE`: joules per step where measured, else step time.

Rows come from two places, the same numbers either way:

* a ``greentrain bench ssprop --json`` result (:mod:`greentrain.bench.where`, ``greentrain
  bench where FILE...``);
* a recorded bench run in a store (:func:`rows_from_runs`; the app's Compare page): the run
  logs one metrics row per variant (``step`` i is ``config.bench_variants[i]``) with each
  ratio against the fastest dense configuration.

Ratios are unitless; all of them are headline ratios (medians of paired per-round ratios, the
mean for the bar schedule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greentrain.report.reading import RunReader

TOLERANCE = 0.01  # ratios within 1% of dense are "no gain"
HEADERS = [
    "workload",
    "device",
    "setting",
    "sparse step ×",
    "sparse J/step ×",
    "sparse backward ×",
    "bar step ×",
    "drop 0 step ×",
    "verdict",
]
# (row key, metric) of each variant's figures in a row
FIGURES = {
    "sparse": ("step_time", "energy", "backward_time"),
    "bar": ("step_time",),
    "zero": ("step_time",),
}


def setting(cfg: Mapping[str, Any]) -> str:
    """``bfloat16, channels_last, CUDA graphs``: how the benchmark ran."""
    parts = [str(cfg.get("dtype", "?"))]
    if cfg.get("channels_last"):
        parts.append("channels_last")
    if cfg.get("cuda_graphs") or (
        cfg.get("compile") and cfg.get("compile_mode") == "reduce-overhead"
    ):
        parts.append("CUDA graphs")
    elif cfg.get("compile"):
        parts.append("compiled")
    else:
        parts.append("eager")
    if cfg.get("backend") not in (None, "auto"):
        parts.append(f"backend {cfg['backend']}")
    return ", ".join(parts)


def workload(cfg: Mapping[str, Any]) -> str:
    """``resnet50 3x224x224, batch 64``: the model and its input."""
    shape = "x".join(str(s) for s in cfg.get("input_shape") or [])
    model = cfg.get("model", "?")
    if model == "ddpm":
        model = f"DDPM UNet base {cfg.get('unet_base') or 'paper'}"
    return f"{model} {shape}, batch {cfg.get('batch_size')}"


def verdict(energy: float | None, step: float | None) -> str:
    """``saves`` / ``no gain`` / ``costs`` from the J/step ratio, else the step-time ratio."""
    value, what = (energy, "energy") if energy is not None else (step, "time")
    if value is None:
        return "n/a"
    if value < 1 - TOLERANCE:
        return f"saves {what} ({1 - value:.0%})"
    if value > 1 + TOLERANCE:
        return f"costs {what} (+{value - 1:.0%})"
    return f"no gain ({what})"


def make_row(
    cfg: Mapping[str, Any],
    device: str,
    ratios: Mapping[str, Mapping[str, float | None]],
    drop: float = 0.8,
) -> dict[str, Any]:
    """One row from the benchmark's config, its device and ``ratios[variant][metric]`` for
    the variants ``sparse`` (at ``drop``), ``bar`` and ``zero`` (vs the fastest dense)."""
    sparse = ratios.get("sparse") or {}
    energy, step = sparse.get("energy"), sparse.get("step_time")
    return {
        "workload": workload(cfg),
        "device": device,
        "setting": setting(cfg),
        "sparse_step": step,
        "sparse_energy": energy,
        "sparse_backward": sparse.get("backward_time"),
        "bar_step": (ratios.get("bar") or {}).get("step_time"),
        "zero_step": (ratios.get("zero") or {}).get("step_time"),
        "verdict": verdict(energy, step),
        "drop": drop,
    }


def rows_from_runs(runs: Iterable[Mapping[str, Any]], drop: float = 0.8) -> list[dict[str, Any]]:
    """A row per recorded, finished ``greentrain bench ssprop`` run among ``runs``."""
    names = {"sparse": f"sparse@{drop:g}", "bar": f"bar@{drop:g}", "zero": "sparse@0"}
    out = []
    for run in runs:
        if (run.get("tags") or {}).get("bench") != "ssprop" or run.get("status") != "finished":
            continue
        reader = RunReader(run)
        cfg = reader.config()
        variants = cfg.get("bench_variants")
        if not isinstance(variants, list):
            continue
        by_step = {}
        for _, m in reader.metrics():
            step = reader.integer(m.get("step"), "metrics.step")
            if step is not None and 0 <= step < len(variants):
                by_step[variants[step]] = m
        ratios = {
            key: {
                metric: reader.number(
                    by_step.get(name, {}).get(f"{metric}_ratio_vs_fastest_dense"), "metrics"
                )
                for metric in FIGURES[key]
            }
            for key, name in names.items()
        }
        env = run.get("env") if isinstance(run.get("env"), Mapping) else {}
        gpus = env.get("gpu_models") if isinstance(env.get("gpu_models"), list) else []
        on_gpu = str(cfg.get("device", "cpu")).startswith("cuda") and gpus
        device = str(gpus[0]) if on_gpu else str(env.get("cpu_model") or "CPU")
        out.append(make_row(cfg, device, ratios, drop))
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cells(r: Mapping[str, Any]) -> list[str]:
    """A row's table cells, in :data:`HEADERS` order."""
    energy = "n/a (no NVML)" if r["sparse_energy"] is None else _x(r["sparse_energy"])
    return [r["workload"], r["device"], r["setting"], _x(r["sparse_step"]), energy,
            _x(r["sparse_backward"]), _x(r["bar_step"]), _x(r["zero_step"]),
            r["verdict"]]  # fmt: skip


def how_to_read(drop: float = 0.8) -> str:
    """The sentence under the table."""
    return (
        f"Sparse = constant drop {drop:g}; bar = the paper's bar schedule (period 2 epochs, drop "
        f"{drop:g}); drop 0 = ssProp layers at rate 0 (the native path). × = ratio to the "
        "fastest dense configuration (median of paired per-round ratios; the bar schedule's "
        "mean). Verdict from J/step where NVML measured it, else step time; within "
        f"{TOLERANCE:.0%} = no gain."
    )


def markdown(rows: Sequence[Mapping[str, Any]], drop: float = 0.8) -> str:
    """The table in Markdown, with how to read it."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    out += ["| " + " | ".join(c.replace("|", "/") for c in cells(r)) + " |" for r in rows]
    return "\n".join([*out, "", how_to_read(drop)]) + "\n"

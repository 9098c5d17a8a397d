"""Where ssProp saves energy and where it does not: one row per benchmarked workload.

Built from ``greentrain bench ssprop --json`` results (``greentrain bench where FILE...``, the
GPU study's ``where-ssprop-saves.md``). Every ratio is the result's headline ratio against the
*fastest* dense configuration (:mod:`greentrain.bench.stats`): the median of paired per-round
ratios, the mean for the bar schedule. The verdict of a row compares its drop-0.8 figures with
1 +/- :data:`TOLERANCE`: joules per step where the result measured them (NVML), else step time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greentrain.bench.stats import headline

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


def _ratio(variant: Mapping[str, Any] | None, metric: str) -> float | None:
    if not variant:
        return None
    ratio = (variant.get("ratios_vs_fastest_dense") or {}).get(metric)
    if not isinstance(ratio, Mapping):
        return None
    schedule = variant.get("kind") == "schedule"
    if schedule and "mean" not in ratio:  # results before the schedule's ratio was its mean
        return None
    return headline(ratio, schedule)


def _variant(result: Mapping[str, Any], pick) -> Mapping[str, Any] | None:
    return next((v for v in result.get("variants", []) if pick(v)), None)


def _setting(cfg: Mapping[str, Any]) -> str:
    parts = [cfg.get("dtype", "?")]
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


def _workload(cfg: Mapping[str, Any]) -> str:
    shape = "x".join(str(s) for s in cfg.get("input_shape", []))
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


def row(result: Mapping[str, Any], drop: float = 0.8) -> dict[str, Any]:
    """One table row of a bench result (the sparse variant at ``drop``)."""
    cfg = result.get("config", {})
    sparse = _variant(result, lambda v: v.get("kind") == "sparse" and v.get("drop_rate") == drop)
    bar = _variant(result, lambda v: v.get("kind") == "schedule")
    zero = _variant(result, lambda v: v.get("kind") == "sparse" and v.get("drop_rate") == 0.0)
    energy = _ratio(sparse, "energy")
    step = _ratio(sparse, "step_time")
    return {
        "workload": _workload(cfg),
        "device": (result.get("env") or {}).get("device_name", "?"),
        "setting": _setting(cfg),
        "sparse_step": step,
        "sparse_energy": energy,
        "sparse_backward": _ratio(sparse, "backward_time"),
        "bar_step": _ratio(bar, "step_time"),
        "zero_step": _ratio(zero, "step_time"),
        "verdict": verdict(energy, step),
        "drop": drop,
    }


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cells(r: Mapping[str, Any]) -> list[str]:
    energy = "n/a (no NVML)" if r["sparse_energy"] is None else _x(r["sparse_energy"])
    return [r["workload"], r["device"], r["setting"], _x(r["sparse_step"]), energy,
            _x(r["sparse_backward"]), _x(r["bar_step"]), _x(r["zero_step"]),
            r["verdict"]]  # fmt: skip


def markdown(results: Sequence[Mapping[str, Any]], drop: float = 0.8) -> str:
    """The table in Markdown, with how to read it."""
    rows = [cells(row(r, drop)) for r in results]
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    out += [
        "",
        f"Sparse = constant drop {drop:g}; bar = the paper's bar schedule (period 2 epochs, drop "
        f"{drop:g}); drop 0 = ssProp layers at rate 0 (the native path). × = ratio to the "
        "fastest dense configuration (median of paired per-round ratios; the bar schedule's "
        "mean). Verdict from J/step where NVML measured it, else step time; within "
        f"{TOLERANCE:.0%} = no gain.",
    ]
    return "\n".join(out) + "\n"

"""Where ssProp saves energy and where it does not: one row per benchmarked workload.

A row compares a model's ssProp variants with the *fastest* dense configuration of the same
benchmark (``greentrain bench ssprop``): constant drop 0.8 (step time, joules per step where
NVML measured them, backward time), the paper's bar schedule (its mean step ratio), and drop 0
(the native path, which should cost nothing; against dense in the *same* memory layout, so
the column shows ssProp's overhead and not the layout's). The verdict reads the 95% confidence
interval of the drop-0.8 figure over the benchmark's paired rounds (joules per step where NVML
measured them, else step time): "saves" when the whole interval is below 1, "costs" when it is
above 1, "no difference detected" when it spans 1, and no verdict for a result that kept no
interval (saved before intervals were kept).

Rows come from two places, the same numbers either way:

* a ``greentrain bench ssprop --json`` result (:mod:`greentrain.bench.where`, ``greentrain
  bench where FILE...``);
* a recorded bench run in a store (:func:`rows_from_runs`; the app's Compare page): the run
  logs one metrics row per variant (``step`` i is ``config.bench_variants[i]``) with each
  ratio against the fastest dense configuration (``*_ratio_vs_fastest_dense``, its interval's
  ends ``*_low`` and ``*_high``) and against the same-settings dense (``*_ratio``).

Ratios are unitless; all of them are headline ratios (medians of paired per-round ratios, the
mean for the bar schedule). A figure is ``{"ratio": r, "low": l, "high": h}`` (``low``/``high``
None when no interval was kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greentrain.report.reading import RunReader

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
# which dense each row key is compared with: the fastest dense configuration, or for drop 0
# (the native path's overhead) dense in the same memory layout as the row
BASELINE = {"sparse": "fastest", "bar": "fastest", "zero": "same_layout"}
Figure = Mapping[str, float | None]


LEVEL = 0.95  # a verdict needs an interval of at least this coverage


def figure(
    ratio: float | None,
    low: float | None = None,
    high: float | None = None,
    level: float | None = None,
) -> dict:
    """A headline ratio with the ends of its confidence interval (None where not kept) and the
    interval's coverage (None: not recorded, taken as :data:`LEVEL`)."""
    return {"ratio": ratio, "low": low, "high": high, "level": level}


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
    if cfg.get("other_layout") is False:
        parts.append("dense in this layout only")
    return ", ".join(parts)


def workload(cfg: Mapping[str, Any]) -> str:
    """``resnet50 3x224x224, batch 64``: the model and its input."""
    shape = "x".join(str(s) for s in cfg.get("input_shape") or [])
    model = cfg.get("model", "?")
    if model == "ddpm":
        model = f"DDPM UNet base {cfg.get('unet_base') or 'paper'}"
    return f"{model} {shape}, batch {cfg.get('batch_size')}"


def _pct(value: float) -> str:
    """A fraction as whole percent, without the sign or the percent sign: 0.123 -> ``12``."""
    return f"{abs(value) * 100:.0f}"


def verdict(energy: Figure | None, step: Figure | None) -> str:
    """From the J/step figure where measured, else the step-time figure, and its interval:
    ``saves energy (12%, CI 8-15%)``, ``costs time (+20%, CI +18-23%)``,
    ``no difference detected (time)`` when the interval spans 1, ``no verdict (...)`` without
    an interval."""
    use_energy = bool(energy) and energy.get("ratio") is not None
    fig, what = (energy, "energy") if use_energy else (step, "time")
    if not fig or fig.get("ratio") is None:
        return "n/a"
    value, low, high = fig["ratio"], fig.get("low"), fig.get("high")
    if low is None or high is None:
        return f"no verdict ({what}: no interval over rounds)"
    if fig.get("level") is not None and fig["level"] < LEVEL - 1e-9:
        return f"no verdict ({what}: too few rounds for a {LEVEL:.0%} interval)"
    if high < 1:
        return f"saves {what} ({_pct(1 - value)}%, CI {_pct(1 - high)}-{_pct(1 - low)}%)"
    if low > 1:
        return f"costs {what} (+{_pct(value - 1)}%, CI +{_pct(low - 1)}-{_pct(high - 1)}%)"
    return f"no difference detected ({what})"


def make_row(
    cfg: Mapping[str, Any],
    device: str,
    figures: Mapping[str, Mapping[str, Figure | None]],
    drop: float = 0.8,
) -> dict[str, Any]:
    """One row from the benchmark's config, its device and ``figures[variant][metric]`` (each
    :func:`figure`) for the variants ``sparse`` (at ``drop``), ``bar`` (both against the fastest
    dense) and ``zero`` (against dense in the row's layout)."""
    sparse = figures.get("sparse") or {}

    def get(key: str, metric: str) -> dict:
        return dict((figures.get(key) or {}).get(metric) or figure(None))

    return {
        "workload": workload(cfg),
        "device": device,
        "setting": setting(cfg),
        "sparse_step": get("sparse", "step_time"),
        "sparse_energy": get("sparse", "energy"),
        "sparse_backward": get("sparse", "backward_time"),
        "bar_step": get("bar", "step_time"),
        "zero_step": get("zero", "step_time"),
        "verdict": verdict(sparse.get("energy"), sparse.get("step_time")),
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
        figures = {
            key: {
                metric: _stored_figure(reader, by_step.get(name, {}), metric, BASELINE[key])
                for metric in FIGURES[key]
            }
            for key, name in names.items()
        }
        env = run.get("env") if isinstance(run.get("env"), Mapping) else {}
        gpus = env.get("gpu_models") if isinstance(env.get("gpu_models"), list) else []
        on_gpu = str(cfg.get("device", "cpu")).startswith("cuda") and gpus
        device = str(gpus[0]) if on_gpu else str(env.get("cpu_model") or "CPU")
        out.append(make_row(cfg, device, figures, drop))
    return out


def _stored_figure(reader: RunReader, row: Mapping[str, Any], metric: str, baseline: str) -> dict:
    """A figure from a recorded metrics row (see the module docstring for the names)."""
    name = f"{metric}_ratio_vs_fastest_dense" if baseline == "fastest" else f"{metric}_ratio"
    keys = (name, name + "_low", name + "_high", name + "_level")
    return figure(*(reader.number(row.get(k), "metrics") for k in keys))


def _x(fig: Figure | None) -> str:
    """``0.912 [0.890-0.931]``; the ratio alone without an interval; ``-`` without a ratio."""
    if not fig or fig.get("ratio") is None:
        return "-"
    if fig.get("low") is None or fig.get("high") is None:
        return f"{fig['ratio']:.3f}"
    level = fig.get("level")
    below = f", {level:.0%}" if level is not None and level < LEVEL - 1e-9 else ""
    return f"{fig['ratio']:.3f} [{fig['low']:.3f}-{fig['high']:.3f}{below}]"


def cells(r: Mapping[str, Any]) -> list[str]:
    """A row's table cells, in :data:`HEADERS` order."""
    energy = "n/a (no NVML)" if r["sparse_energy"]["ratio"] is None else _x(r["sparse_energy"])
    return [r["workload"], r["device"], r["setting"], _x(r["sparse_step"]), energy,
            _x(r["sparse_backward"]), _x(r["bar_step"]), _x(r["zero_step"]),
            r["verdict"]]  # fmt: skip


def how_to_read(drop: float = 0.8) -> str:
    """The sentence under the table."""
    return (
        f"Sparse = constant drop {drop:g}; bar = the paper's bar schedule (period 2 epochs, drop "
        f"{drop:g}); drop 0 = ssProp layers at rate 0 (the native path). × = ratio to the "
        "fastest dense configuration (drop 0: to dense in the same memory layout), the median "
        "of paired per-round ratios (the bar schedule's: their mean), with its 95% confidence "
        "interval in brackets (its lower coverage after a comma where too few rounds ran). Verdict "
        "from J/step where NVML measured it, else step time: saves or costs only when the "
        "interval excludes 1, else no difference detected."
    )


def markdown(rows: Sequence[Mapping[str, Any]], drop: float = 0.8) -> str:
    """The table in Markdown, with how to read it."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
    out += ["| " + " | ".join(c.replace("|", "/") for c in cells(r)) + " |" for r in rows]
    return "\n".join([*out, "", how_to_read(drop)]) + "\n"

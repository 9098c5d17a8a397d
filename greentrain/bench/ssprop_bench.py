"""``greentrain bench ssprop``: step time, backward time and joules of ssProp vs dense.

Method (also recorded in every result under ``"method"``):

* **Variants.** One model is built once from ``cfg.seed`` and deep-copied into every variant,
  so all start from the same weights: ``dense`` (``nn.Conv2d``, the run's layout/dtype/compile
  settings), ``dense`` in the *other* memory layout (channels_last toggled; the fastest dense
  configuration is the faster of the two), one ``ssprop.convert``-ed model per drop rate, and
  with ``schedule_check`` a model driven by the paper's bar schedule.
* **Interleaving.** After ``warmup`` untimed rounds, each of ``steps`` rounds runs one train
  step (zero_grad + forward + loss + backward + optimizer step) of every variant, in an order
  rotated by one each round, so slow drift of the machine's load hits all variants alike.
* **Timing.** ``time.perf_counter`` with ``torch.cuda.synchronize`` around the step and around
  ``loss.backward()`` (backward time = that call alone) on CUDA. Seconds.
* **Energy.** On CUDA, after the timed rounds, ``energy_rounds`` rounds of *blocks*: each
  variant runs a block of consecutive train steps (enough to last ``energy_block_s`` at dense
  speed; at least 2, an even number so a bar schedule spends half of it in each phase) with the
  NVML total-energy counter read before and after; joules per step = block joules / block
  steps, one figure per round, paired with dense's figure of the same round. A single step is
  shorter than the counter's update period (a 30 ms step read as 0 J or a whole update, seen on
  an H100), so per-step readings would be quantized. Elsewhere the figure is ``None`` with the
  reason (never 0).
* **Ratios.** Median (and p10-p90) of per-round ratios ``variant[r] / dense[r]``, against the
  same-settings dense and against the fastest dense configuration (per metric: the dense
  variant with the lowest median paired ratio to the same-settings dense).
* **Per layer.** Each conv's input and grad_output are captured from one real step of an eager
  dense copy; then, per layer, dense (both layouts) and sparse (the variant's converted layer,
  loaded with the dense layer's weights) each build their graph once and
  ``torch.autograd.grad(out, [weight, bias, input], grad_output, retain_graph=True)`` is timed
  ``layer_reps`` times, interleaved. grad_input is skipped where the real input needed none
  (the first conv). Eager mode, same layout and autocast dtype as the run.
* **Schedule check.** The bar schedule alternates dense and sparse epochs; with one step per
  "epoch" and period 2 it alternates every step, so the mean over the timed rounds of its
  per-round step-time ratio to dense is the schedule's step-time ratio (measured, not derived;
  the ratio of total times is given too). The per-phase ratios and
  ``(r_dense_phase + r_sparse_phase) / 2`` are reported too.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from greentrain.bench.config import (
    SCHEDULE_DROP_RATE,
    SCHEDULE_PERIOD_EPOCHS,
    BenchConfig,
    validate,
)
from greentrain.bench.energy import open_step_energy
from greentrain.bench.stats import paired_ratio, summarize
from greentrain.errors import ConfigError, MeterUnavailable

SCHEMA = "greentrain.bench.ssprop/1"

METHOD = {
    "order": "round-robin, start rotated by one variant each round (after warm-up rounds)",
    "step_time": "zero_grad + forward + loss + backward + optimizer.step, seconds, synchronised",
    "backward_time": "loss.backward() alone, seconds, synchronised before and after",
    "energy": (
        "NVML total-energy counter read around blocks of consecutive steps (>= energy_block_s "
        "at dense speed), joules per step = block joules / steps, one figure per round; "
        "None off CUDA"
    ),
    "ratio": "median of per-round ratios variant[r] / baseline[r] (p10-p90 of the same ratios)",
    "fastest_dense": (
        "per metric, the dense variant (either memory layout) with the lowest median paired "
        "ratio to the same-settings dense"
    ),
    "per_layer": (
        "conv input and grad_output captured from one real eager dense step; per layer each "
        "variant builds its graph once and torch.autograd.grad(..., retain_graph=True) is timed "
        "layer_reps times, interleaved; sparse layers carry the dense layer's weights; "
        "grad_input skipped where the real input needed none; eager, same layout/autocast"
    ),
    "schedule": (
        "bar schedule (period 2 epochs, drop 0.8) with 1 step per epoch, so phases alternate "
        "every step; ratio = mean over steps of its per-round step-time ratio to dense "
        "(ratio_of_total_time = sum/sum also given)"
    ),
}

Log = Callable[[str], None]


@dataclass
class _Variant:
    """One model under test and the timings it collected."""

    name: str
    kind: str  # "dense" | "sparse" | "schedule"
    drop_rate: float | None
    channels_last: bool
    model: Any  # eager nn.Module (parameters, hooks, sparse layers)
    run_model: Any  # what the step calls: ``model`` or ``torch.compile(model)``
    optimizer: Any
    scheduler: Any = None
    step_s: list[float] = field(default_factory=list)
    backward_s: list[float] = field(default_factory=list)
    energy_j: list[float | None] = field(default_factory=list)
    rates: list[float | None] = field(default_factory=list)


def _noop(_: str) -> None:
    pass


def _layout_name(channels_last: bool) -> str:
    return "channels_last" if channels_last else "contiguous"


def _sync_fn(device) -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _autocast_fn(cfg: BenchConfig, device) -> Callable[[], Any]:
    import torch

    if cfg.dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def build_base_model(cfg: BenchConfig):
    """The one seeded model every variant is copied from (eager, CPU, fp32)."""
    import torch

    from greentrain.jobs.models import build_model

    torch.manual_seed(cfg.seed)
    return build_model(
        cfg.model, num_classes=cfg.num_classes, in_channels=cfg.input_shape[0], stem=cfg.stem
    )


def _optimizer(cfg: BenchConfig, model):
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))


def _make_variant(
    cfg: BenchConfig, base, device, *, name: str, kind: str, drop_rate, channels_last: bool
) -> _Variant:
    import torch

    model = copy.deepcopy(base)
    scheduler = None
    if kind in ("sparse", "schedule"):
        # The functions, not ``ssprop.convert``: once the submodule ``ssprop.convert`` is
        # imported it shadows the lazily exported function of the same name on the package.
        from ssprop.convert import convert, sparse_modules

        convert(model, drop_rate=drop_rate, selection=cfg.selection, dims=cfg.dims)
        if not sparse_modules(model):
            raise ConfigError(
                f"ssprop.convert found no layer to make sparse in {cfg.model!r}: "
                "pick a model with Conv2d layers"
            )
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    if kind == "schedule":
        from ssprop import schedulers

        scheduler = schedulers.build(
            "bar",
            model,
            drop_rate,
            total_steps=cfg.warmup + cfg.steps,
            steps_per_epoch=1,
            period=SCHEDULE_PERIOD_EPOCHS,
            period_unit="epoch",
            warmup=0,
        )
    optimizer = _optimizer(cfg, model)
    run_model = torch.compile(model, mode=cfg.compile_mode) if cfg.compile else model
    return _Variant(
        name=name,
        kind=kind,
        drop_rate=drop_rate,
        channels_last=channels_last,
        model=model,
        run_model=run_model,
        optimizer=optimizer,
        scheduler=scheduler,
    )


def make_variants(cfg: BenchConfig, base, device) -> list[_Variant]:
    """Dense (run's layout), dense (other layout), sparse per drop rate, optional bar schedule."""
    cl = cfg.channels_last
    variants = [
        _make_variant(
            cfg, base, device, name="dense", kind="dense", drop_rate=None, channels_last=cl
        ),
        _make_variant(
            cfg,
            base,
            device,
            name=f"dense[{_layout_name(not cl)}]",
            kind="dense",
            drop_rate=None,
            channels_last=not cl,
        ),
    ]
    for rate in cfg.drops:
        variants.append(
            _make_variant(
                cfg,
                base,
                device,
                name=f"sparse@{rate:g}",
                kind="sparse",
                drop_rate=rate,
                channels_last=cl,
            )
        )
    if cfg.schedule_check:
        variants.append(
            _make_variant(
                cfg,
                base,
                device,
                name=f"bar@{SCHEDULE_DROP_RATE:g}",
                kind="schedule",
                drop_rate=SCHEDULE_DROP_RATE,
                channels_last=cl,
            )
        )
    return variants


def _current_rate(variant: _Variant) -> float | None:
    if variant.kind == "dense":
        return None
    from ssprop.convert import sparse_modules

    mods = sparse_modules(variant.model)
    return float(mods[0][1].drop_rate) if mods else None


def _train_step(variant: _Variant, batch, sync, autocast) -> tuple[float, float]:
    """One timed train step: (step_s, backward_s)."""
    import torch.nn.functional as F

    x, x_cl, y = batch
    xin = x_cl if variant.channels_last else x
    sync()
    t0 = time.perf_counter()
    variant.optimizer.zero_grad(set_to_none=True)
    with autocast():
        out = variant.run_model(xin)
        loss = F.cross_entropy(out.float(), y)
    sync()
    b0 = time.perf_counter()
    loss.backward()
    sync()
    b1 = time.perf_counter()
    variant.optimizer.step()
    sync()
    t1 = time.perf_counter()
    return t1 - t0, b1 - b0


def _advance(variant: _Variant, batch, sync, autocast) -> tuple[float, float]:
    """One timed train step, then one scheduler step: (step_s, backward_s)."""
    timing = _train_step(variant, batch, sync, autocast)
    if variant.scheduler is not None:
        variant.scheduler.step()
    return timing


def _rotated(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


def run_rounds(
    cfg: BenchConfig, variants: list[_Variant], batch, sync, autocast, log: Log = _noop
) -> None:
    """Warm-up rounds, then ``cfg.steps`` timed rounds; fills each variant's lists."""
    total = cfg.warmup + cfg.steps
    for r in range(total):
        if r == cfg.warmup:
            gc.collect()
        timed = r >= cfg.warmup
        for v in _rotated(variants, r):
            rate = _current_rate(v)
            step_s, backward_s = _advance(v, batch, sync, autocast)
            if timed:
                v.step_s.append(step_s)
                v.backward_s.append(backward_s)
                v.rates.append(rate)
        label = "warm-up" if not timed else "timed"
        log(f"round {r + 1}/{total} ({label}) done")


def energy_block_steps(cfg: BenchConfig, dense_step_s: list[float]) -> int:
    """Steps per energy block: >= ``energy_block_s`` at dense's median step time, even, >= 2."""
    median_s = summarize(dense_step_s)["median"] if dense_step_s else 0.0
    steps = max(2, math.ceil(cfg.energy_block_s / median_s)) if median_s > 0 else 2
    return steps + steps % 2


def run_energy_blocks(
    cfg: BenchConfig, variants: list[_Variant], batch, sync, autocast, counter, log: Log = _noop
) -> int:
    """Joules per step of every variant from blocks of consecutive steps; returns block steps."""
    steps = energy_block_steps(cfg, variants[0].step_s)
    for r in range(cfg.energy_rounds):
        for v in _rotated(variants, r):
            sync()
            e0 = counter.read_j()
            for _ in range(steps):
                _advance(v, batch, sync, autocast)
            sync()
            v.energy_j.append((counter.read_j() - e0) / steps)
        log(f"energy round {r + 1}/{cfg.energy_rounds} ({steps} steps per block) done")
    return steps


# ----------------------------------------------------------------------------- per layer


def capture_conv_io(cfg: BenchConfig, base, device, batch, autocast) -> list[tuple[str, Any, dict]]:
    """(name, dense conv, {input, grad_output, needs_input_grad}) for every Conv2d of one step."""
    import torch.nn as nn
    import torch.nn.functional as F

    model = copy.deepcopy(base).to(device)
    if cfg.channels_last:
        import torch

        model.to(memory_format=torch.channels_last)
    model.train()
    records: dict[str, dict] = {}
    handles = []
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]

    for name, module in convs:

        def hook(mod, inputs, output, name=name):
            inp = inputs[0]
            rec = {"input": inp.detach(), "needs_input_grad": bool(inp.requires_grad)}
            records[name] = rec
            if output.requires_grad:
                output.register_hook(lambda g, rec=rec: rec.__setitem__("grad_output", g.detach()))

        handles.append(module.register_forward_hook(hook))
    x, x_cl, y = batch
    with autocast():
        out = model(x_cl if cfg.channels_last else x)
        loss = F.cross_entropy(out.float(), y)
    loss.backward()
    for h in handles:
        h.remove()
    return [(n, m, records[n]) for n, m in convs if "grad_output" in records.get(n, {})]


def _layer_graph(layer, rec: dict, channels_last: bool, autocast):
    """Forward ``layer`` once on the captured input; return (output, grad targets, grad_output)."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = rec["input"].contiguous(memory_format=fmt).detach()
    x.requires_grad_(rec["needs_input_grad"])
    with autocast():
        out = layer(x)
    grad = rec["grad_output"].to(dtype=out.dtype).contiguous(memory_format=fmt)
    targets = [p for p in layer.parameters() if p.requires_grad]
    if rec["needs_input_grad"]:
        targets.append(x)
    return out, targets, grad


def time_layers(
    cfg: BenchConfig, variants: list[_Variant], captured, device, sync, autocast, log: Log = _noop
) -> list[dict]:
    """Per-conv backward seconds: dense (both layouts) and each sparse variant, interleaved."""
    import torch

    reps = cfg.effective_layer_reps
    sparse_variants = [v for v in variants if v.kind == "sparse"]
    rows = []
    for index, (name, conv, rec) in enumerate(captured):
        entries = []  # (key, layer, channels_last)
        dense_same = copy.deepcopy(conv)
        dense_alt = copy.deepcopy(conv).to(
            memory_format=torch.contiguous_format if cfg.channels_last else torch.channels_last
        )
        entries.append(("dense", dense_same, cfg.channels_last))
        entries.append(("dense_alt", dense_alt, not cfg.channels_last))
        converted: dict[str, bool] = {}
        for v in sparse_variants:
            layer = copy.deepcopy(v.model.get_submodule(name))
            layer.load_state_dict(conv.state_dict())
            converted[v.name] = type(layer) is not type(conv)
            if hasattr(layer, "drop_rate"):
                layer.drop_rate = v.drop_rate
            entries.append((v.name, layer, cfg.channels_last))
        graphs = {key: _layer_graph(layer, rec, cl, autocast) for key, layer, cl in entries}
        times: dict[str, list[float]] = {key: [] for key in graphs}
        keys = list(graphs)
        for r in range(reps + 1):  # first repetition is an untimed warm-up
            for key in _rotated(keys, r):
                out, targets, grad = graphs[key]
                sync()
                t0 = time.perf_counter()
                torch.autograd.grad(out, targets, grad, retain_graph=True)
                sync()
                if r > 0:
                    times[key].append(time.perf_counter() - t0)
        del graphs
        dense_med = summarize(times["dense"])["median"]
        alt_med = summarize(times["dense_alt"])["median"]
        alt_ratio = paired_ratio(times["dense_alt"], times["dense"])
        # faster = lower median of paired ratios (the same statistic as every reported ratio)
        fastest_key = "dense_alt" if alt_ratio and alt_ratio["median"] < 1.0 else "dense"
        x = rec["input"]
        row = {
            "name": name,
            "in_channels": conv.in_channels,
            "out_channels": conv.out_channels,
            "kernel_size": list(conv.kernel_size),
            "stride": list(conv.stride),
            "groups": conv.groups,
            "input_hw": [int(x.shape[-2]), int(x.shape[-1])],
            "needs_input_grad": rec["needs_input_grad"],
            "dense_backward_s": dense_med,
            "dense_alt_layout_backward_s": alt_med,
            "fastest_dense_layout": _layout_name(
                cfg.channels_last if fastest_key == "dense" else not cfg.channels_last
            ),
            "dense_alt_layout_ratio": alt_ratio["median"] if alt_ratio else None,
            "fastest_dense_backward_s": dense_med if fastest_key == "dense" else alt_med,
            "sparse": [],
        }
        for v in sparse_variants:
            ratio = paired_ratio(times[v.name], times["dense"])
            ratio_fast = paired_ratio(times[v.name], times[fastest_key])
            row["sparse"].append(
                {
                    "variant": v.name,
                    "drop_rate": v.drop_rate,
                    "converted": converted[v.name],
                    "backward_s": summarize(times[v.name])["median"],
                    "ratio": ratio["median"] if ratio else None,
                    "ratio_vs_fastest_dense": ratio_fast["median"] if ratio_fast else None,
                }
            )
        rows.append(row)
        log(f"layer {index + 1}/{len(captured)} {name} timed")
    return rows


def layer_totals(rows: list[dict]) -> dict | None:
    """Sums of per-layer medians (seconds) and the ratios of those sums."""
    if not rows:
        return None
    dense = sum(r["dense_backward_s"] for r in rows)
    fastest = sum(r["fastest_dense_backward_s"] for r in rows)
    total = {"dense_backward_s": dense, "fastest_dense_backward_s": fastest, "sparse": []}
    for k, entry in enumerate(rows[0]["sparse"]):
        s = sum(r["sparse"][k]["backward_s"] for r in rows)
        total["sparse"].append(
            {
                "variant": entry["variant"],
                "drop_rate": entry["drop_rate"],
                "backward_s": s,
                "ratio": s / dense if dense > 0 else None,
                "ratio_vs_fastest_dense": s / fastest if fastest > 0 else None,
            }
        )
    return total


# ----------------------------------------------------------------------------- assembly


def _metric_lists(v: _Variant) -> dict[str, list]:
    return {"step_time": v.step_s, "backward_time": v.backward_s, "energy": v.energy_j}


def _fastest_dense(variants: list[_Variant]) -> dict[str, str | None]:
    """Per metric, the dense variant with the lowest median paired ratio to ``dense``."""
    dense = [v for v in variants if v.kind == "dense"]
    ref = dense[0]
    out: dict[str, str | None] = {}
    for metric in ("step_time", "backward_time", "energy"):
        best, best_ratio = None, None
        for v in dense:
            r = paired_ratio(_metric_lists(v)[metric], _metric_lists(ref)[metric])
            if r is not None and (best_ratio is None or r["median"] < best_ratio):
                best, best_ratio = v.name, r["median"]
        out[metric] = best
    return out


def _variant_result(v: _Variant, dense: _Variant, fastest: dict, by_name: dict, cfg) -> dict:
    metrics = _metric_lists(v)
    ratios, ratios_fast = {}, {}
    for metric, values in metrics.items():
        ratios[metric] = paired_ratio(values, _metric_lists(dense)[metric])
        fast = fastest.get(metric)
        ratios_fast[metric] = (
            paired_ratio(values, _metric_lists(by_name[fast])[metric]) if fast else None
        )
    return {
        "name": v.name,
        "kind": v.kind,
        "drop_rate": v.drop_rate,
        "layout": _layout_name(v.channels_last),
        "channels_last": v.channels_last,
        "dtype": cfg.dtype,
        "compile": cfg.compile,
        "steps": len(v.step_s),
        "step_time_s": summarize(v.step_s),
        "backward_time_s": summarize(v.backward_s),
        "energy_j_per_step": summarize([e for e in v.energy_j if e is not None]),
        "ratios": ratios,
        "ratios_vs_fastest_dense": ratios_fast,
    }


def _schedule_result(v: _Variant, dense: _Variant) -> dict:
    import numpy as np

    per_round = paired_ratio(v.step_s, dense.step_s)
    ratios = [a / b for a, b in zip(v.step_s, dense.step_s, strict=False) if b > 0]
    phases = {}
    for label, pick in (("dense_phase", lambda r: not r), ("sparse_phase", lambda r: bool(r))):
        idx = [i for i, rate in enumerate(v.rates) if pick(rate)]
        if idx:
            ratio = paired_ratio([v.step_s[i] for i in idx], [dense.step_s[i] for i in idx])
            phases[label] = ratio["median"] if ratio else None
        else:
            phases[label] = None
    both = [phases["dense_phase"], phases["sparse_phase"]]
    return {
        "variant": v.name,
        "schedule": "bar",
        "drop_rate": SCHEDULE_DROP_RATE,
        "period_epochs": SCHEDULE_PERIOD_EPOCHS,
        "steps_per_epoch": 1,
        "rates": v.rates,
        "sparse_fraction": float(np.mean([bool(r) for r in v.rates])) if v.rates else None,
        # mean over steps of the paired per-step ratio: the schedule's average step time in
        # units of dense, robust to machine load that scales both members of a pair alike
        "mean_step_time_ratio": float(np.mean(ratios)) if ratios else None,
        "ratio_of_total_time": per_round["ratio_of_means"] if per_round else None,
        "phase_step_time_ratios": phases,
        "mean_of_phase_ratios": (sum(both) / 2) if all(b is not None for b in both) else None,
    }


def _env(cfg: BenchConfig, device, counter_label: str | None) -> dict:
    import torch

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = _cpu_model()
    return {
        "device_name": device_name,
        "energy_device": counter_label,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "num_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summary_rows(result: dict) -> list[dict]:
    """Flat rows (one per variant) with the headline ratios; what the store's metrics get."""
    rows = []
    for v in result["variants"]:
        row = {
            "variant": v["name"],
            "kind": v["kind"],
            "drop_rate": v["drop_rate"],
            "dense": 1 if v["kind"] == "dense" else 0,
            "channels_last": 1 if v["channels_last"] else 0,
        }
        for metric in ("step_time", "backward_time", "energy"):
            r = v["ratios"].get(metric)
            f = v["ratios_vs_fastest_dense"].get(metric)
            row[f"{metric}_ratio"] = r["median"] if r else None
            row[f"{metric}_ratio_vs_fastest_dense"] = f["median"] if f else None
        row["step_time_s"] = v["step_time_s"]["median"] if v["step_time_s"] else None
        row["backward_time_s"] = v["backward_time_s"]["median"] if v["backward_time_s"] else None
        e = v["energy_j_per_step"]
        row["energy_j_per_step"] = e["median"] if e else None
        rows.append(row)
    return rows


def run_ssprop_bench(cfg: BenchConfig, *, log: Log = _noop) -> dict:
    """Run the whole benchmark in this process and return the result object (see README)."""
    validate(cfg)
    import torch

    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, log)
    finally:
        torch.set_num_threads(threads_before)


def _run(cfg: BenchConfig, log: Log) -> dict:
    import torch

    device = torch.device(cfg.device)
    sync = _sync_fn(device)
    autocast = _autocast_fn(cfg, device)
    try:
        counter = open_step_energy(cfg.device)
        energy_info = {"available": True, "source": counter.source, "reason": None}
    except MeterUnavailable as err:
        counter = None
        energy_info = {"available": False, "source": None, "reason": err.reason, "fix": err.fix}

    base = build_base_model(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.batch_size, *cfg.input_shape, generator=gen).to(device)
    y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=gen).to(device)
    batch = (x, x.contiguous(memory_format=torch.channels_last), y)

    log(f"building {2 + len(cfg.drops) + int(cfg.schedule_check)} variants of {cfg.model}")
    variants = make_variants(cfg, base, device)
    run_rounds(cfg, variants, batch, sync, autocast, log)
    if counter is not None:
        energy_info["block_steps"] = run_energy_blocks(
            cfg, variants, batch, sync, autocast, counter, log
        )
        energy_info["rounds"] = cfg.energy_rounds

    layers: list[dict] = []
    if cfg.per_layer:
        captured = capture_conv_io(cfg, base, device, batch, autocast)
        layers = time_layers(cfg, variants, captured, device, sync, autocast, log)

    by_name = {v.name: v for v in variants}
    dense = by_name["dense"]
    fastest = _fastest_dense(variants)
    result = {
        "schema": SCHEMA,
        "config": cfg.to_dict(),
        "env": _env(cfg, device, counter.label if counter else None),
        "method": METHOD,
        "energy": energy_info,
        "dense_baseline": {
            "same_settings": "dense",
            "same_settings_layout": _layout_name(cfg.channels_last),
            "fastest": fastest,
        },
        "variants": [_variant_result(v, dense, fastest, by_name, cfg) for v in variants],
        "layers": layers,
        "layers_total": layer_totals(layers),
        "schedule": None,
        "run_id": None,
    }
    if cfg.schedule_check:
        result["schedule"] = _schedule_result(by_name[f"bar@{SCHEDULE_DROP_RATE:g}"], dense)
    result["summary"] = summary_rows(result)
    return result

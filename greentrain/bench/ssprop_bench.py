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
  variant with the lowest median paired ratio to the same-settings dense; with
  ``other_layout`` False only the run's layout is measured). Every ratio keeps its per-round
  ratios and a 95% confidence interval of its median (a schedule's: of its mean)
  (:mod:`greentrain.bench.stats`); verdicts come from that interval.
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

import torch

from greentrain.bench import task
from greentrain.bench.config import SCHEDULE_DROP_RATE, BenchConfig, validate
from greentrain.bench.energy import open_step_energy
from greentrain.bench.layers import capture_conv_io, layer_totals, time_layers
from greentrain.bench.phases import measure_phases
from greentrain.bench.result import (
    environment,
    fastest_dense,
    schedule_result,
    summary_rows,
    variant_result,
)
from greentrain.bench.rounds import run_energy_blocks, run_rounds
from greentrain.bench.variants import (
    Log,
    autocast_fn,
    layout_name,
    make_variants,
    noop,
    sync_fn,
)
from greentrain.errors import MeterUnavailable

SCHEMA = "greentrain.bench.ssprop/1"

METHOD = {
    "order": "round-robin, start rotated by one variant each round (after warm-up rounds)",
    "step_time": (
        "wall seconds of zero_grad + forward + loss + backward + optimizer.step, synchronised "
        "before and after the step only"
    ),
    "backward_time": (
        "loss.backward() alone: GPU seconds between CUDA events on CUDA, wall seconds on CPU"
    ),
    "gpu_time": (
        "CUDA only: GPU seconds per phase (forward, backward, optimizer) and step, between CUDA "
        "events; in eager mode they include gaps where the GPU waited for kernel launches"
    ),
    "optimizer": "the same for every variant: Adam (or SGD), fused where torch has it",
    "compile": "--compile/--cuda-graphs: torch.compile(fullgraph=True) of every variant",
    "energy": (
        "NVML total-energy counter read around blocks of consecutive steps (>= energy_block_s "
        "at dense speed), joules per step = block joules / steps, one figure per round; "
        "None off CUDA"
    ),
    "ratio": (
        "median of per-round ratios variant[r] / baseline[r] (p10-p90 of the same ratios); for "
        "a schedule variant the mean of them (its phases alternate), also in the summary; "
        "per_round keeps the ratios; interval: 95% CI of the median from order statistics "
        "(distribution-free), mean_interval: Student t CI of the mean; a verdict (saves/costs) "
        "only when the headline's interval excludes 1"
    ),
    "fastest_dense": (
        "per metric, the dense variant (either memory layout; the run's only with "
        "--no-other-layout) with the lowest median paired ratio to the same-settings dense"
    ),
    "per_layer": (
        "conv input and grad_output captured from one real eager dense step; per layer each "
        "variant builds its graph once and torch.autograd.grad(..., retain_graph=True) is timed "
        "layer_reps times, interleaved: on CUDA GPU seconds of a CUDA graph of it replayed "
        "graph_replays times (no host overhead; the forward runs on the capture stream; a failed "
        "capture falls back to wall time and says why in capture_error), on CPU wall seconds; "
        "sparse layers carry the dense layer's weights; grad_input skipped where the real input "
        "needed none; same layout/autocast; ratio vs dense in the run's layout, "
        "ratio_vs_fastest_dense vs the layout faster for the whole model (one for all layers)"
    ),
    "phases": (
        "--phases: forward, backward (torch.autograd.grad of one retained graph) and "
        "optimizer.step of each steady variant, each alone in blocks of >= energy_block_s, "
        "energy_rounds rotated rounds; seconds and NVML joules per repetition (None off CUDA); "
        "backward FLOPs analytic (ssprop.flops); ratios to same-settings dense"
    ),
    "schedule": (
        "bar schedule (period 2 epochs, drop 0.8) with 1 step per epoch, so phases alternate "
        "every step; ratio = mean over steps of its per-round step-time ratio to dense "
        "(ratio_of_total_time = sum/sum also given)"
    ),
}


def run_ssprop_bench(cfg: BenchConfig, *, log: Log = noop) -> dict:
    """Run the whole benchmark in this process and return the result object (see README)."""
    validate(cfg)
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, log)
    finally:
        torch.set_num_threads(threads_before)


def _run(cfg: BenchConfig, log: Log) -> dict:
    device = torch.device(cfg.device)
    sync = sync_fn(device)
    autocast = autocast_fn(cfg, device)
    try:
        counter = open_step_energy(cfg.device)
        energy_info = {"available": True, "source": counter.source, "reason": None}
    except MeterUnavailable as err:
        counter = None
        energy_info = {"available": False, "source": None, "reason": err.reason, "fix": err.fix}

    base = task.build(cfg)
    batch = task.make_batch(cfg, device)

    count = 1 + int(cfg.other_layout) + len(cfg.drops) + int(cfg.schedule_check)
    log(f"building {count} variants of {cfg.model}")
    variants = make_variants(cfg, base, device)
    run_rounds(cfg, variants, batch, device, autocast, log)
    if counter is not None:
        energy_info["block_steps"] = run_energy_blocks(
            cfg, variants, batch, sync, autocast, counter, log
        )
        energy_info["rounds"] = cfg.energy_rounds

    layers: list[dict] = []
    if cfg.per_layer:
        captured = capture_conv_io(cfg, base, device, batch, autocast)
        layers = time_layers(cfg, variants, captured, device, sync, autocast, log)

    phases = None
    if cfg.phases:
        reason = None if counter is not None else energy_info["reason"]
        phases = measure_phases(cfg, variants, batch, device, autocast, counter, reason, log)

    by_name = {v.name: v for v in variants}
    dense = by_name["dense"]
    fastest = fastest_dense(variants)
    result = {
        "schema": SCHEMA,
        "config": cfg.to_dict(),
        "env": environment(cfg, device, counter.label if counter else None),
        "method": METHOD,
        "energy": energy_info,
        "dense_baseline": {
            "same_settings": "dense",
            "same_settings_layout": layout_name(cfg.channels_last),
            "other_layout_measured": cfg.other_layout,
            "fastest": fastest,
        },
        "variants": [variant_result(v, dense, fastest, by_name, cfg) for v in variants],
        "layers": layers,
        "layers_total": layer_totals(layers),
        "schedule": None,
        "phases": phases,
        "run_id": None,
    }
    if cfg.schedule_check:
        result["schedule"] = schedule_result(by_name[f"bar@{SCHEDULE_DROP_RATE:g}"], dense)
    result["summary"] = summary_rows(result)
    return result

"""Per-layer conv backward times: each conv's input and grad_output are captured from one real
eager dense step; then per layer, dense (both layouts) and each sparse variant's layer (with the
dense layer's weights) build their graph once and ``torch.autograd.grad`` is timed, interleaved.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from greentrain.bench import task
from greentrain.bench.clock import graph_replay_seconds
from greentrain.bench.config import BenchConfig
from greentrain.bench.rounds import rotated
from greentrain.bench.stats import paired_ratio, quantiles
from greentrain.bench.variants import Log, Variant, layout_name, noop


def capture_conv_io(cfg: BenchConfig, base, device, batch, autocast) -> list[tuple[str, Any, dict]]:
    """(name, dense conv, {input, grad_output, needs_input_grad}) for every Conv2d of one step."""
    model = copy.deepcopy(base).to(device)
    if cfg.channels_last:
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
    with autocast():
        loss = task.loss(model, batch, cfg.channels_last)
    loss.backward()
    for h in handles:
        h.remove()
    return [(n, m, records[n]) for n, m in convs if "grad_output" in records.get(n, {})]


def _layer_graph(layer, rec: dict, channels_last: bool, autocast):
    """Forward ``layer`` once on the captured input; return (output, grad targets, grad_output)."""
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


def _time_backward(graph, sync, device, replays: int) -> tuple[float, str]:
    """Seconds of one layer backward, and how they were taken: on CUDA the GPU time of a CUDA
    graph replayed ``replays`` times (no host overhead), else (or if capture fails) wall time
    between synchronisations."""
    out, targets, grad = graph

    def work() -> None:
        torch.autograd.grad(out, targets, grad, retain_graph=True)

    if device.type == "cuda":
        try:
            return graph_replay_seconds(work, replays), "cuda graph replay"
        except RuntimeError:
            pass  # not capturable: time it eagerly
    sync()
    t0 = time.perf_counter()
    work()
    sync()
    return time.perf_counter() - t0, "wall"


def time_layers(
    cfg: BenchConfig, variants: list[Variant], captured, device, sync, autocast, log: Log = noop
) -> list[dict]:
    """Per-conv backward seconds: dense (both layouts) and each sparse variant, interleaved."""
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
            # a layer under the variant's min_channels is converted but runs dense
            converted[v.name] = type(layer) is not type(conv) and conv.out_channels >= getattr(
                layer, "min_channels", 0
            )
            if hasattr(layer, "drop_rate"):
                layer.drop_rate = v.drop_rate
            entries.append((v.name, layer, cfg.channels_last))
        graphs = {key: _layer_graph(layer, rec, cl, autocast) for key, layer, cl in entries}
        times: dict[str, list[float]] = {key: [] for key in graphs}
        keys = list(graphs)
        method = "wall"
        for r in range(reps + 1):  # first repetition is an untimed warm-up
            for key in rotated(keys, r):
                seconds, method = _time_backward(graphs[key], sync, device, cfg.graph_replays)
                if r > 0:
                    times[key].append(seconds)
        del graphs
        dense_med = quantiles(times["dense"])["median"]
        alt_med = quantiles(times["dense_alt"])["median"]
        alt_ratio = paired_ratio(times["dense_alt"], times["dense"])
        # faster = lower median of paired ratios (the same statistic as every reported ratio)
        fastest_key = "dense_alt" if alt_ratio and alt_ratio["median"] < 1.0 else "dense"
        x = rec["input"]
        row = {
            "name": name,
            "timing": method,
            "in_channels": conv.in_channels,
            "out_channels": conv.out_channels,
            "kernel_size": list(conv.kernel_size),
            "stride": list(conv.stride),
            "groups": conv.groups,
            "input_hw": [int(x.shape[-2]), int(x.shape[-1])],
            "needs_input_grad": rec["needs_input_grad"],
            "dense_backward_s": dense_med,
            "dense_alt_layout_backward_s": alt_med,
            "fastest_dense_layout": layout_name(
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
                    "backward_s": quantiles(times[v.name])["median"],
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

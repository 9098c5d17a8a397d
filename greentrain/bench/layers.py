"""Per-layer conv backward times: each conv's input and grad_output are captured from one real
eager dense step; then per layer, dense (both layouts) and each sparse variant's layer (with the
dense layer's weights) build their graph once and ``torch.autograd.grad`` is timed, interleaved.

On CUDA the backward is captured in a CUDA graph (its forward run on the capture stream, see
:class:`~greentrain.bench.clock.CapturedBackward`) and timed over replays; where the capture
fails the row says so (``timing`` is ``"wall"`` and ``capture_error`` the reason) and the wall
time between synchronisations is used. Seconds.

Baselines: each sparse layer's ``ratio`` is against dense in the run's memory layout (the same
layout as the layer); ``ratio_vs_fastest_dense`` is against the layout that is faster for the
whole model (the lower sum of per-layer medians), one layout for every row, never a per-layer
pick that no real model could make.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from greentrain.bench import task
from greentrain.bench.clock import CapturedBackward
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


class _LayerTimer:
    """Times one layer's backward: CUDA graph replays on CUDA (wall time where the capture
    fails, with the reason kept), wall time between synchronisations elsewhere."""

    def __init__(self, layer, rec: dict, channels_last: bool, autocast, device, sync, replays):
        self.sync, self.replays = sync, replays
        self.method, self.capture_error = "wall", None
        self.captured: CapturedBackward | None = None
        self.graph = None

        def forward():
            return _layer_graph(layer, rec, channels_last, autocast)

        if device.type == "cuda":
            try:
                self.captured = CapturedBackward(forward)
                self.method = "cuda graph replay"
            except RuntimeError as err:
                text = str(err).strip()
                self.capture_error = text.splitlines()[0] if text else type(err).__name__
                torch.cuda.synchronize(device)
        if self.captured is None:
            self.graph = forward()

    def seconds(self) -> float:
        if self.captured is not None:
            return self.captured.seconds(self.replays)
        out, targets, grad = self.graph
        self.sync()
        t0 = time.perf_counter()
        torch.autograd.grad(out, targets, grad, retain_graph=True)
        self.sync()
        return time.perf_counter() - t0


def _ratio_fields(values: list[float], base: list[float]) -> dict:
    ratio = paired_ratio(values, base)
    return {
        "ratio": ratio["median"] if ratio else None,
        "ratio_interval": ratio["interval"] if ratio else None,
        "ratio_per_round": ratio["per_round"] if ratio else None,
    }


def time_layers(
    cfg: BenchConfig, variants: list[Variant], captured, device, sync, autocast, log: Log = noop
) -> list[dict]:
    """Per-conv backward seconds: dense (both layouts) and each sparse variant, interleaved."""
    reps = cfg.effective_layer_reps
    sparse_variants = [v for v in variants if v.kind == "sparse"]
    rows, row_times = [], []
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
        timers = {
            key: _LayerTimer(layer, rec, cl, autocast, device, sync, cfg.graph_replays)
            for key, layer, cl in entries
        }
        times: dict[str, list[float]] = {key: [] for key in timers}
        keys = list(timers)
        for r in range(reps + 1):  # first repetition is an untimed warm-up
            for key in rotated(keys, r):
                seconds = timers[key].seconds()
                if r > 0:
                    times[key].append(seconds)
        methods = {t.method for t in timers.values()}
        errors = [f"{k}: {t.capture_error}" for k, t in timers.items() if t.capture_error]
        del timers
        alt_ratio = paired_ratio(times["dense_alt"], times["dense"])
        x = rec["input"]
        row = {
            "name": name,
            "timing": methods.pop() if len(methods) == 1 else "mixed",
            "capture_error": "; ".join(errors) or None,
            "in_channels": conv.in_channels,
            "out_channels": conv.out_channels,
            "kernel_size": list(conv.kernel_size),
            "stride": list(conv.stride),
            "groups": conv.groups,
            "input_hw": [int(x.shape[-2]), int(x.shape[-1])],
            "needs_input_grad": rec["needs_input_grad"],
            "layout": layout_name(cfg.channels_last),
            "dense_backward_s": quantiles(times["dense"])["median"],
            "dense_alt_layout_backward_s": quantiles(times["dense_alt"])["median"],
            "dense_alt_layout_ratio": alt_ratio["median"] if alt_ratio else None,
            "per_round_s": {"dense": times["dense"], "dense_alt": times["dense_alt"]}
            | {v.name: times[v.name] for v in sparse_variants},
            "sparse": [
                {
                    "variant": v.name,
                    "drop_rate": v.drop_rate,
                    "converted": converted[v.name],
                    "backward_s": quantiles(times[v.name])["median"],
                    **_ratio_fields(times[v.name], times["dense"]),
                }
                for v in sparse_variants
            ],
        }
        rows.append(row)
        row_times.append(times)
        log(f"layer {index + 1}/{len(captured)} {name} timed")
    _fill_fastest_layout(rows, row_times, cfg.channels_last)
    return rows


def _fill_fastest_layout(rows: list[dict], row_times: list[dict], channels_last: bool) -> None:
    """Ratios against the dense layout that is faster for the whole model (one for all rows)."""
    same = sum(r["dense_backward_s"] for r in rows)
    alt = sum(r["dense_alt_layout_backward_s"] for r in rows)
    key = "dense_alt" if alt < same else "dense"
    layout = layout_name(channels_last if key == "dense" else not channels_last)
    for row, times in zip(rows, row_times, strict=True):
        row["fastest_dense_layout"] = layout
        row["fastest_dense_backward_s"] = quantiles(times[key])["median"]
        for s in row["sparse"]:
            fast = paired_ratio(times[s["variant"]], times[key])
            s["ratio_vs_fastest_dense"] = fast["median"] if fast else None


def _round_sums(rows: list[dict], key: str) -> list[float] | None:
    """Per repetition, the sum over layers of ``key``'s seconds (None for older results)."""
    lists = [(r.get("per_round_s") or {}).get(key) for r in rows]
    if not lists or any(not values for values in lists):
        return None
    return [sum(values) for values in zip(*lists, strict=True)]


def layer_totals(rows: list[dict]) -> dict | None:
    """Sums of per-layer medians (seconds) and the ratios of those sums; with each sparse
    variant, the median of per-repetition ratios of summed seconds to dense in the run's
    layout, its 95% interval and those ratios (``round_ratio``)."""
    if not rows:
        return None
    dense = sum(r["dense_backward_s"] for r in rows)
    fastest = sum(r["fastest_dense_backward_s"] for r in rows)
    total = {
        "dense_backward_s": dense,
        "fastest_dense_backward_s": fastest,
        "fastest_dense_layout": rows[0]["fastest_dense_layout"],
        "sparse": [],
    }
    dense_rounds = _round_sums(rows, "dense")
    for k, entry in enumerate(rows[0]["sparse"]):
        s = sum(r["sparse"][k]["backward_s"] for r in rows)
        rounds = _round_sums(rows, entry["variant"])
        paired = paired_ratio(rounds, dense_rounds) if rounds and dense_rounds else None
        total["sparse"].append(
            {
                "variant": entry["variant"],
                "drop_rate": entry["drop_rate"],
                "backward_s": s,
                "ratio": s / dense if dense > 0 else None,
                "ratio_vs_fastest_dense": s / fastest if fastest > 0 else None,
                "round_ratio": paired,
            }
        )
    return total

"""Assembling a ``bench ssprop`` result: per-variant statistics, paired ratios against dense
and the fastest dense configuration, the schedule check, the environment, the summary rows."""

from __future__ import annotations

import platform

import numpy as np
import torch

from greentrain.bench.config import SCHEDULE_DROP_RATE, SCHEDULE_PERIOD_EPOCHS, BenchConfig
from greentrain.bench.stats import headline, headline_interval, paired_ratio, quantiles
from greentrain.bench.variants import Variant, layout_name, optimizer_impl
from greentrain.envinfo import cpu_model

METRICS = ("step_time", "backward_time", "gpu_step_time", "energy")


def _metric_lists(v: Variant) -> dict[str, list]:
    return {
        "step_time": v.step_s,
        "backward_time": v.backward_s,
        "gpu_step_time": v.gpu_s.get("step", []),
        "energy": v.energy_j,
    }


def fastest_dense(variants: list[Variant]) -> dict[str, str | None]:
    """Per metric, the dense variant with the lowest median paired ratio to ``dense``."""
    dense = [v for v in variants if v.kind == "dense"]
    ref = dense[0]
    out: dict[str, str | None] = {}
    for metric in METRICS:
        best, best_ratio = None, None
        for v in dense:
            r = paired_ratio(_metric_lists(v)[metric], _metric_lists(ref)[metric])
            if r is not None and (best_ratio is None or r["median"] < best_ratio):
                best, best_ratio = v.name, r["median"]
        out[metric] = best
    return out


def variant_result(v: Variant, dense: Variant, fastest: dict, by_name: dict, cfg) -> dict:
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
        "layout": layout_name(v.channels_last),
        "channels_last": v.channels_last,
        "dtype": cfg.dtype,
        "compile": cfg.compile or cfg.cuda_graphs,
        "cuda_graphs": cfg.cuda_graphs,
        "optimizer": optimizer_impl(v.optimizer),
        "steps": len(v.step_s),
        "ratio_statistic": "mean" if v.kind == "schedule" else "median",
        "step_time_s": quantiles(v.step_s),
        "backward_time_s": quantiles(v.backward_s),
        "gpu_time_s": {phase: quantiles(values) for phase, values in v.gpu_s.items()} or None,
        "energy_j_per_step": quantiles([e for e in v.energy_j if e is not None]),
        "ratios": ratios,
        "ratios_vs_fastest_dense": ratios_fast,
    }


def schedule_result(v: Variant, dense: Variant) -> dict:
    per_round = paired_ratio(v.step_s, dense.step_s)
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
        # the schedule's headline ratio (bench.stats.headline): the mean over steps of the paired
        # per-step ratio, its average step time in units of dense; the summary row's too
        "mean_step_time_ratio": headline(per_round, schedule=True),
        "mean_step_time_interval": headline_interval(per_round, schedule=True),
        "ratio_of_total_time": per_round["ratio_of_means"] if per_round else None,
        "phase_step_time_ratios": phases,
        "mean_of_phase_ratios": (sum(both) / 2) if all(b is not None for b in both) else None,
    }


def environment(cfg: BenchConfig, device, counter_label: str | None) -> dict:
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = cpu_model()
    return {
        "device_name": device_name,
        "energy_device": counter_label,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "num_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def summary_rows(result: dict) -> list[dict]:
    """Flat rows (one per variant) with the headline ratios, the ends of their 95% intervals
    (``*_low``, ``*_high``) and the intervals' coverage (``*_level``; lower with few rounds);
    what the store's metrics get."""
    rows = []
    for v in result["variants"]:
        row = {
            "variant": v["name"],
            "kind": v["kind"],
            "drop_rate": v["drop_rate"],
            "dense": 1 if v["kind"] == "dense" else 0,
            "channels_last": 1 if v["channels_last"] else 0,
        }
        schedule = v["kind"] == "schedule"
        for metric in METRICS:
            for name, table in (
                (f"{metric}_ratio", v["ratios"]),
                (f"{metric}_ratio_vs_fastest_dense", v["ratios_vs_fastest_dense"]),
            ):
                ratio = table.get(metric)
                interval = headline_interval(ratio, schedule) or {}
                row[name] = headline(ratio, schedule)
                row[f"{name}_low"] = interval.get("low")
                row[f"{name}_high"] = interval.get("high")
                row[f"{name}_level"] = interval.get("level")
        row["step_time_s"] = v["step_time_s"]["median"] if v["step_time_s"] else None
        row["backward_time_s"] = v["backward_time_s"]["median"] if v["backward_time_s"] else None
        e = v["energy_j_per_step"]
        row["energy_j_per_step"] = e["median"] if e else None
        rows.append(row)
    return rows

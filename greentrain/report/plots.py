"""Static figures for papers (matplotlib, Agg backend): accuracy vs energy with the Pareto front,
and energy per epoch by schedule. Energies are shown in kWh. Labels from runs go through
:func:`~greentrain.report.escape.plot_text` (no control characters, no math text).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from greentrain.errors import ConfigError
from greentrain.report.escape import plot_text
from greentrain.report.formatting import PLOT_SUFFIXES
from greentrain.report.grouping import group_runs
from greentrain.report.study import energy_per_epoch_by_schedule, pareto_front


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_energy(runs: Iterable[dict], ax) -> None:
    """Scatter of mean final accuracy (%) vs mean energy (kWh) per configuration, with error
    bars (std) and the Pareto front (max accuracy, min energy) drawn as a step line.
    Estimated energies are drawn hollow. DDPM-only selections plot FID (lower is better)."""
    groups = group_runs(list(runs))
    metric = "accuracy"
    if (
        not groups.empty
        and groups["accuracy_mean"].isna().all()
        and groups["fid_mean"].notna().any()
    ):
        metric = "fid"
    scale = 100.0 if metric == "accuracy" else 1.0
    data = (
        groups.dropna(subset=[f"{metric}_mean", "energy_kwh_mean"]) if not groups.empty else groups
    )
    if data.empty:
        ax.text(0.5, 0.5, "no finished runs with energy and accuracy", ha="center", va="center")
        ax.set_axis_off()
        return
    for _, g in data.iterrows():
        est = bool(g["estimated"])
        ax.errorbar(
            g["energy_kwh_mean"],
            g[f"{metric}_mean"] * scale,
            xerr=None if math.isnan(g["energy_kwh_std"]) else g["energy_kwh_std"],
            yerr=None if math.isnan(g[f"{metric}_std"]) else g[f"{metric}_std"] * scale,
            fmt="o",
            mfc="none" if est else None,
            capsize=3,
            label=plot_text(g["configuration"]) + (" (estimated)" if est else ""),
        )
    front = pareto_front(data, metric)
    ax.step(
        front["energy_kwh_mean"],
        front[f"{metric}_mean"] * scale,
        where="post",
        color="black",
        linestyle="--",
        linewidth=1,
        label="Pareto front",
    )
    ax.set_xlabel("energy per run (kWh)")
    ax.set_ylabel("final test accuracy (%)" if metric == "accuracy" else "FID (lower is better)")
    ax.set_title("Accuracy vs energy")
    ax.legend(fontsize="x-small", loc="best")
    ax.grid(alpha=0.3)


def plot_energy_per_epoch(runs: Iterable[dict], ax) -> None:
    """Mean energy (kWh) of each epoch, one line per schedule (finished runs)."""
    series = energy_per_epoch_by_schedule(list(runs))
    if not series:
        ax.text(0.5, 0.5, "no per-epoch energy recorded", ha="center", va="center")
        ax.set_axis_off()
        return
    for label, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=plot_text(label))
    ax.set_xlabel("epoch")
    ax.set_ylabel("energy per epoch (kWh)")
    ax.set_title("Energy per epoch by schedule")
    ax.legend(fontsize="x-small", loc="best")
    ax.grid(alpha=0.3)


def save_plots(runs: Iterable[dict], path: str | Path) -> Path:
    """Write both figures side by side to ``path`` (``.pdf``, ``.png`` or ``.svg``)."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(
            f"--plot {path}: unknown figure type; end the file name in {', '.join(PLOT_SUFFIXES)}"
        )
    runs = list(runs)
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        plot_accuracy_vs_energy(runs, ax1)
        plot_energy_per_epoch(runs, ax2)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)
    return path

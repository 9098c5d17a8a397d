"""Static figures for papers (matplotlib, Agg backend): accuracy vs energy with the Pareto front,
and energy per epoch by schedule. Units, colours and intervals are those of every other surface
(:mod:`~greentrain.report.unit_policy`, :mod:`~greentrain.report.palette`, 95% intervals).
Labels from runs go through
:func:`~greentrain.report.escape.plot_text` (no control characters, no math text).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from greentrain.errors import ConfigError
from greentrain.report import palette
from greentrain.report.comparison import compare
from greentrain.report.escape import plot_text
from greentrain.report.formatting import PLOT_SUFFIXES
from greentrain.report.study import energy_per_epoch_by_schedule, pareto_front, schedule_label
from greentrain.report.unit_policy import policy_for


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_energy(runs: Iterable[dict], ax) -> None:
    """Scatter of mean final accuracy (%) vs mean energy per configuration, in the unit of
    :mod:`~greentrain.report.unit_policy`, with 95% interval error bars, n in the legend, one
    colour per configuration (:mod:`~greentrain.report.palette`) and the Pareto front as a step
    line. Partly modelled energies are drawn hollow. DDPM-only selections plot FID."""
    c = compare(list(runs))
    groups = c.groups
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
    colours = palette.colours(groups["configuration"])
    modelled = {row.configuration: row.modelled for row in c.rows}
    ef = c.policy.energy_factor
    for _, g in data.iterrows():
        label = str(g["configuration"])
        est = modelled.get(label, False)
        ax.errorbar(
            g["energy_kwh_mean"] * ef,
            g[f"{metric}_mean"] * scale,
            xerr=None if math.isnan(g["energy_kwh_ci95"]) else g["energy_kwh_ci95"] * ef,
            yerr=None if math.isnan(g[f"{metric}_ci95"]) else g[f"{metric}_ci95"] * scale,
            fmt="o",
            color=colours.get(label),
            mfc="none" if est else None,
            capsize=3,
            label=plot_text(f"{label} (n={int(g['n_runs'])})") + (" (modelled)" if est else ""),
        )
    front = pareto_front(data, metric)
    ax.step(
        front["energy_kwh_mean"] * ef,
        front[f"{metric}_mean"] * scale,
        where="post",
        color="black",
        linestyle="--",
        linewidth=1,
        label="Pareto front",
    )
    ax.set_xlabel(f"energy per run ({c.policy.energy_unit})")
    ax.set_ylabel("final accuracy (%)" if metric == "accuracy" else "FID (lower is better)")
    ax.set_title("Accuracy vs energy (95% interval over seeds)")
    ax.legend(fontsize="x-small", loc="best")
    ax.grid(alpha=0.3)


def plot_energy_per_epoch(runs: Iterable[dict], ax) -> None:
    """Mean energy of each epoch (numbered from 1), one line per schedule (finished runs), in
    the unit of :mod:`~greentrain.report.unit_policy`."""
    series = energy_per_epoch_by_schedule(list(runs))
    if not series:
        ax.text(0.5, 0.5, "no per-epoch energy recorded", ha="center", va="center")
        ax.set_axis_off()
        return
    policy = policy_for([v for values in series.values() for v in values])
    groups = compare(list(runs)).groups
    by_config = palette.colours(groups["configuration"]) if not groups.empty else {}
    colours = {
        schedule_label(g): by_config.get(str(g["configuration"])) for _, g in groups.iterrows()
    }
    for label, values in series.items():
        ax.plot(
            range(1, len(values) + 1),
            [v * policy.energy_factor for v in values],
            marker="o",
            color=colours.get(label),
            label=plot_text(label),
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"energy per epoch ({policy.energy_unit})")
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

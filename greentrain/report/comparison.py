"""The comparison table every surface shows (app, Markdown, LaTeX, the CLI): one row per
configuration with n, each figure's mean and 95% interval, the ratio to dense with its interval
and the share of its energy that was measured, in the units of :mod:`greentrain.report.unit_policy`.

Cells are plain text; each surface escapes the configuration label for its target. ``±`` is the
half-width of the 95% t-interval over seeds (:func:`~greentrain.report.stats.mean_ci`), never a
standard deviation; with one run there is no interval and the cell says ``(n=1)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from greentrain.report.grouping import group_runs, grouped_by, pooled_keys, runs_frame
from greentrain.report.meter_check import disagreements, ranking_sentence, rankings
from greentrain.report.provenance import energy_split, measured_share, split_sentence
from greentrain.report.stats import missing
from greentrain.report.unit_policy import UnitPolicy, policy_for, readable
from greentrain.report.versus_dense import Answer, Ratio, answer, ratio_cell, ratios_to_dense

CI_NOTE = (
    "Mean over seeds of finished runs; ± is the half-width of the 95% t-interval (none for n=1). "
    "vs dense: accuracy per energy over dense's, paired by seed where seeds match (geometric "
    "mean, t-interval on log ratios), else a bootstrap of the ratio of means; [low, high] is "
    "its 95% interval."
)


@dataclass
class Row:
    """One configuration's cells (plain text) and the numbers behind them."""

    configuration: str
    n: int
    accuracy: str
    energy: str
    co2: str
    per_energy: str
    gflops: str
    vs_dense: str
    measured: str
    modelled: bool
    flagged: bool
    ratio: Ratio | None = None


@dataclass
class Comparison:
    """What a comparison shows: its rows, units, keys, the answer and the notes."""

    policy: UnitPolicy
    rows: list[Row]
    groups: pd.DataFrame
    grouped_by: list[str]
    pooled_over: list[str]
    answer: Answer
    energy_note: str
    notes: list[str] = field(default_factory=list)

    def headers(self) -> list[str]:
        """Column headers (plain text) with this comparison's units."""
        p = self.policy
        return [
            "Configuration",
            "n",
            "Accuracy (%)",
            f"Energy ({p.energy_unit})",
            f"CO2e ({p.mass_unit})",
            f"Accuracy per energy ({p.per_energy_unit})",
            "Backward GFLOPs/iter",
            "vs dense [95% CI]",
            "Measured energy",
        ]

    @staticmethod
    def cells(row: Row) -> list[str]:
        return [
            row.configuration,
            str(row.n),
            row.accuracy,
            row.energy,
            row.co2,
            row.per_energy,
            row.gflops,
            row.vs_dense,
            row.measured,
        ]


def pm(mean: float | None, ci95: float | None, n: int, fmt=readable) -> str:
    """``"96.1 ± 0.92"``; ``"96.1 (n=1)"`` without an interval; ``"n/a"`` without a mean."""
    if missing(mean):
        return "n/a"
    if missing(ci95):
        return f"{fmt(mean)} (n=1)" if n == 1 else fmt(mean)
    return f"{fmt(mean)} ± {fmt(ci95)}"


def _scaled(value: float | None, factor: float) -> float | None:
    return None if missing(value) else float(value) * factor  # type: ignore[arg-type]


def compare(
    runs: Iterable[Mapping], group_by: Sequence[str] | None = None, metric: str | None = None
) -> Comparison:
    """The :class:`Comparison` of the finished runs among ``runs``; ``metric`` is the accuracy
    metric (default: what the runs logged)."""
    runs = [r for r in runs if isinstance(r, Mapping)]
    finished = [r for r in runs if r.get("status") == "finished"]
    groups = group_runs(finished, group_by=group_by, metric=metric)
    frame = runs_frame(finished, group_by, metric)
    policy = policy_for(groups.get("energy_kwh_mean", []), groups.get("co2_g_mean", []))
    ratios = ratios_to_dense(frame)
    by_id = {r.get("id"): r for r in finished}
    rows = []
    for _, g in groups.iterrows():
        n = int(g["n_runs"])
        members = [by_id[i] for i in g["run_ids"] if i in by_id]
        share = measured_share(members)
        ef, mf, pf = policy.energy_factor, policy.mass_factor, 100.0 / policy.energy_factor
        if not missing(g["accuracy_mean"]):
            quality = pm(_scaled(g["accuracy_mean"], 100), _scaled(g["accuracy_ci95"], 100), n)
        elif not missing(g["fid_mean"]):
            quality = "FID " + pm(g["fid_mean"], g["fid_ci95"], n)
        else:
            quality = "n/a"
        gflops = _scaled(g["backward_flops_mean"], 1e-9)
        rows.append(
            Row(
                configuration=str(g["configuration"]),
                n=n,
                accuracy=quality,
                energy=pm(_scaled(g["energy_kwh_mean"], ef), _scaled(g["energy_kwh_ci95"], ef), n),
                co2=pm(_scaled(g["co2_g_mean"], mf), _scaled(g["co2_g_ci95"], mf), n),
                per_energy=pm(
                    _scaled(g["acc_per_kwh_mean"], pf), _scaled(g["acc_per_kwh_ci95"], pf), n
                ),
                gflops=readable(gflops),
                vs_dense=ratio_cell(ratios.get(str(g["configuration"]))),
                measured="n/a" if share is None else f"{share * 100:.0f}%",
                modelled=share is not None and share < 0.9995,
                flagged=bool(g["issues"]),
                ratio=ratios.get(str(g["configuration"])),
            )
        )
    pooled = pooled_keys(finished, group_by)
    notes = [CI_NOTE]
    meters = [d.text() for d in disagreements(finished)]
    if meters:
        labels = dict(zip(frame["id"], frame["configuration"], strict=True))
        notes.append(
            "Meters disagree: "
            + "; ".join(meters)
            + ". "
            + ranking_sentence(rankings(finished, labels))
        )
    if pooled:
        notes.append(
            "Pooled over settings that differ between runs of one configuration: "
            + ", ".join(pooled)
            + "."
        )
    return Comparison(
        policy=policy,
        rows=rows,
        groups=groups,
        grouped_by=grouped_by(groups) if not groups.empty else [],
        pooled_over=pooled,
        answer=answer(frame, finished),
        energy_note=split_sentence(energy_split(finished)),
        notes=notes,
    )

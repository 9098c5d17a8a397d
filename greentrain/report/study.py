"""What a study shows: the Pareto front of quality vs energy, measured energy saving next to
analytic FLOPs saving, the study's total cost (failed runs included) and energy per epoch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from greentrain.record.nesting import counted_once
from greentrain.report.curves import epoch_energies_kwh
from greentrain.report.grouping import runs_frame
from greentrain.report.stats import missing, safe_sum


def pareto_mask(
    quality: Sequence[float], energy: Sequence[float], higher_is_better: bool = True
) -> list[bool]:
    """Which points are on the Pareto front (best quality, least energy).

    A point is dominated when another has energy <= and quality >= (<= if lower is better),
    strictly better in at least one. Points with a missing value are never on the front.
    """
    pts = []
    for q, e in zip(quality, energy, strict=True):
        ok = not missing(q) and not missing(e)
        pts.append((float(q) if higher_is_better else -float(q), float(e)) if ok else None)
    mask = []
    for i, p in enumerate(pts):
        if p is None:
            mask.append(False)
            continue
        dominated = any(
            o is not None
            and j != i
            and o[0] >= p[0]
            and o[1] <= p[1]
            and (o[0] > p[0] or o[1] < p[1])
            for j, o in enumerate(pts)
        )
        mask.append(not dominated)
    return mask


def pareto_front(groups: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """The configurations of ``groups`` (from :func:`group_runs`) on the front of mean
    ``metric`` vs mean energy, sorted by energy. ``metric="fid"`` minimises FID."""
    if groups.empty:
        return groups.copy()
    mask = pareto_mask(
        groups[f"{metric}_mean"].tolist(),
        groups["energy_kwh_mean"].tolist(),
        higher_is_better=(metric != "fid"),
    )
    return groups[mask].sort_values("energy_kwh_mean").reset_index(drop=True)


def savings_vs_dense(groups: pd.DataFrame) -> pd.DataFrame:
    """Measured energy saving vs analytic backward-FLOPs saving of each sparse configuration.

    The dense baseline of a sparse configuration is every configuration with the same model and
    dataset and drop rate 0 (pooled, weighted by run count). Savings are fractions:
    ``1 - sparse / dense`` of mean energy (kWh) and of mean backward FLOPs per iteration.
    ``None`` where the baseline or a figure is missing. Columns: ``configuration``, ``model``,
    ``dataset``, ``schedule``, ``drop_rate``, ``energy_saving``, ``flops_saving``,
    ``accuracy_delta`` (sparse - dense, fraction), ``estimated``, ``baseline``.
    """
    rows = []
    for _, g in groups.iterrows():
        if missing(g["drop_rate"]) or float(g["drop_rate"]) == 0.0:
            continue
        dense = groups[
            (groups["model"] == g["model"])
            & (groups["dataset"] == g["dataset"])
            & (groups["drop_rate"].astype(float) == 0.0)
        ]
        e_d = _weighted_mean(dense, "energy_kwh")
        f_d = _weighted_mean(dense, "backward_flops")
        a_d = _weighted_mean(dense, "accuracy")
        e_s, f_s, a_s = g["energy_kwh_mean"], g["backward_flops_mean"], g["accuracy_mean"]
        rows.append(
            {
                "configuration": g["configuration"],
                "model": g["model"],
                "dataset": g["dataset"],
                "schedule": g["schedule"],
                "drop_rate": g["drop_rate"],
                "energy_saving": _saving(e_s, e_d),
                "flops_saving": _saving(f_s, f_d),
                "accuracy_delta": None if missing(a_s) or a_d is None else a_s - a_d,
                "estimated": bool(g["estimated"] or (not dense.empty and dense["estimated"].any())),
                "baseline": ", ".join(dense["configuration"]) if not dense.empty else None,
            }
        )
    cols = [
        "configuration", "model", "dataset", "schedule", "drop_rate", "energy_saving",
        "flops_saving", "accuracy_delta", "estimated", "baseline",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _saving(sparse: float | None, dense: float | None) -> float | None:
    if missing(sparse) or missing(dense) or not dense:
        return None
    return 1.0 - float(sparse) / float(dense)


def _weighted_mean(groups: pd.DataFrame, q: str) -> float | None:
    num, den = 0.0, 0
    for _, g in groups.iterrows():
        if not missing(g[f"{q}_mean"]) and g[f"{q}_n"]:
            num += float(g[f"{q}_mean"]) * int(g[f"{q}_n"])
            den += int(g[f"{q}_n"])
    return num / den if den else None


def study_totals(runs: Iterable[dict]) -> pd.DataFrame:
    """The real cost of a study, by status and in all (failed and interrupted runs included).

    Index: each status present (``finished``, ``failed``, ``interrupted``, ``running``) then
    ``all``. Columns: ``runs``, ``energy_kwh`` (sum of the runs that have a figure),
    ``co2_g``, ``duration_s``, ``estimated_runs`` (whose energy is an estimate) and
    ``unmeasured_runs`` (no energy figure at all: not counted in the sums, so the sums are
    lower bounds when this is non-zero), ``nested_runs`` (runs nested in another run of the
    selection: their energy, CO2e and time are inside that run's figures, so the sums leave them
    out; :func:`greentrain.record.nesting.counted_once`).
    """
    runs = list(runs)
    frame = runs_frame(runs)
    frame["counted"] = pd.Series(counted_once(runs), index=frame.index, dtype=bool)
    order = ["finished", "failed", "interrupted", "running"]
    rows = {}
    statuses = [s for s in order if s in set(frame["status"])] + sorted(
        set(frame["status"].dropna()) - set(order)
    )
    for status in [*statuses, "all"]:
        sub = frame if status == "all" else frame[frame["status"] == status]
        summed = sub[sub["counted"]]
        rows[status] = {
            "runs": len(sub),
            "energy_kwh": safe_sum(summed["energy_kwh"].dropna()),
            "co2_g": safe_sum(summed["co2_g"].dropna()),
            "duration_s": safe_sum(summed["duration_s"].dropna()),
            "estimated_runs": int(sub["estimated"].sum()) if len(sub) else 0,
            "unmeasured_runs": int(summed["energy_kwh"].isna().sum()),
            "nested_runs": len(sub) - len(summed),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def schedule_label(row: Mapping) -> str:
    """``"dense"``, ``"bar 0.8"`` or ``"constant 0.8, reselect_every=4"`` of a row of
    :func:`~greentrain.report.grouping.runs_frame` or ``group_runs`` (its configuration label
    when it has no model)."""
    if row.get("dataset") is None or missing(row.get("dataset")):
        return str(row["configuration"])
    label = str(row["configuration"]).split(" / ", 2)[-1].replace(" / ", " ")
    return label


def energy_per_epoch_by_schedule(runs: Iterable[dict]) -> dict[str, list[float]]:
    """Mean energy (kWh) of epoch k over the finished runs of each schedule label
    (:func:`schedule_label`: the configuration without model and dataset, settings that vary
    included, so variants are never pooled); epochs whose window was not measured in any run
    are NaN.
    """
    acc: dict[str, list[list[float]]] = {}
    finished = [r for r in runs if isinstance(r, Mapping) and r.get("status") == "finished"]
    frame = runs_frame(finished)
    for run, (_, row) in zip(finished, frame.iterrows(), strict=True):
        label = schedule_label(row)
        for k, e in enumerate(epoch_energies_kwh(run)):
            lists = acc.setdefault(label, [])
            while len(lists) <= k:
                lists.append([])
            if e is not None:
                lists[k].append(e)
    return {
        label: [safe_sum(v) / len(v) if v else float("nan") for v in per_epoch]
        for label, per_epoch in sorted(acc.items())
    }

"""Runs -> tables: one row per run, and runs pooled per configuration.

* **Configuration** = (model, dataset, schedule, drop_rate) from ``run["config"]``; seeds (and
  every other key) are pooled. A run without ``model`` in its config is its own configuration,
  named after the run. Dense runs (drop rate 0) pool whatever schedule they were launched with.
* **Statistics** pool the *finished* runs of a configuration
  (:func:`greentrain.report.stats.mean_ci`).
* **Accuracy per kWh** is computed per run (accuracy / kWh) and then pooled like the others.
* A configuration is estimated if any of its runs is.
* **Run groups** (a multi-node job recorded by one wrapper per node) are one run here, with
  ``nodes`` their number of nodes (1 for a run of one machine): the store's reader has already
  summed them, each node once.
* **Unreadable values** (:mod:`greentrain.report.reading`): a config value of the wrong type is
  shown as its ``repr`` (``model=3`` -> ``3``); a drop rate that is not a finite number puts the
  run in a configuration of its own value, labelled ``.../ invalid '0.8'`` with a numeric
  ``drop_rate`` of ``None``, so it is never pooled with real drop rates. Each row carries the
  ``issues`` of its runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from greentrain.report.escape import as_str
from greentrain.report.reading import Issue, RunReader, describe, summarize
from greentrain.report.runs import (
    energy_sources,
    final_accuracy,
    final_fid,
    mean_backward_flops,
    run_co2_g,
    run_energy_kwh,
    run_is_estimated,
)
from greentrain.report.stats import CI_UNDEFINED_NOTE, mean_ci, missing

GROUP_KEYS: tuple[str, ...] = ("model", "dataset", "schedule", "drop_rate")

# Quantities pooled per configuration: column prefix -> human name (units in the name).
QUANTITIES: dict[str, str] = {
    "accuracy": "final test accuracy (fraction)",
    "fid": "FID (lower is better)",
    "energy_kwh": "energy (kWh)",
    "co2_g": "carbon (g CO2e)",
    "duration_s": "duration (s)",
    "backward_flops": "backward FLOPs per iteration",
    "acc_per_kwh": "accuracy per kWh (1/kWh)",
}


def configuration(run: dict, issues: list[Issue] | None = None) -> tuple[tuple, str]:
    """``(key, label)``: :func:`config_key` and the label the tables show.

    The label is :func:`config_label` of the key, except for a run whose drop rate is not a
    finite number: its key's rate is ``None`` and its label ends in ``invalid <repr>``.
    """
    r = RunReader(run, issues)
    cfg = r.config()
    model = r.text(cfg.get("model"), "config.model")
    if model is None:
        name = r.text(r.run.get("name"), "name") or as_str(r.run.get("id"))
        key = (name, None, None, None)
        return key, config_label(key)
    raw_rate = cfg.get("drop_rate")
    rate = r.number(raw_rate, "config.drop_rate")
    rate = None if rate is None else round(rate, 6)
    schedule = None if rate == 0.0 else r.text(cfg.get("schedule"), "config.schedule")
    key = (model, r.text(cfg.get("dataset"), "config.dataset"), schedule, rate)
    if rate is None and raw_rate is not None:
        label = " / ".join([*config_label(key).split(" / ")[:3], "invalid " + describe(raw_rate)])
        return key, label
    return key, config_label(key)


def config_key(run: dict) -> tuple:
    """(model, dataset, schedule, drop_rate); ``(name, None, None, None)`` without a model.

    A dense run (drop rate 0) has no schedule: whatever schedule it was launched with, it is the
    same training, so all dense runs of a model and dataset pool into one configuration.
    """
    return configuration(run)[0]


def config_label(key: Sequence) -> str:
    """Human label of a configuration key, e.g. ``"resnet18 / cifar10 / bar / 0.8"``."""
    model, dataset, schedule, rate = key
    if dataset is None and schedule is None and rate is None:
        return str(model)
    parts = [str(model), str(dataset)]
    if rate is not None and float(rate) == 0.0:
        parts.append("dense")
    else:
        parts.append(str(schedule) if schedule is not None else "?")
        parts.append(f"{rate:g}" if rate is not None else "?")
    return " / ".join(parts)


def runs_frame(runs: Iterable[dict]) -> pd.DataFrame:
    """One row per run with the figures the reports use (SI units; energy in kWh).

    ``issues`` lists (:func:`~greentrain.report.reading.summarize`) the values of the run that
    were ignored or shown as text.
    """
    rows = []
    for run in runs:
        issues: list[Issue] = []
        r = RunReader(run, issues)
        key, label = configuration(run, issues)
        cfg = r.config()
        acc = final_accuracy(run, issues)
        kwh = run_energy_kwh(run, issues)
        rows.append(
            {
                "id": r.run.get("id"),
                "name": r.text(r.run.get("name"), "name"),
                "status": r.text(r.run.get("status"), "status"),
                "nodes": _node_count(run),
                "started_at": r.text(r.run.get("started_at"), "started_at"),
                "configuration": label,
                "model": key[0],
                "dataset": key[1],
                "schedule": key[2],
                "drop_rate": key[3],
                "seed": r.integer(cfg.get("seed"), "config.seed"),
                "job": r.text(cfg.get("job"), "config.job"),
                "accuracy": acc,
                "fid": final_fid(run, issues),
                "energy_kwh": kwh,
                "co2_g": run_co2_g(run, issues),
                "duration_s": r.number(r.run.get("duration_s"), "duration_s", nonnegative=True),
                "backward_flops": mean_backward_flops(run, issues),
                "acc_per_kwh": acc / kwh if acc is not None and kwh else None,
                "estimated": run_is_estimated(run, issues),
                "energy_sources": "; ".join(
                    f"{d}={s}" for d, s in energy_sources(run, issues).items()
                ),
                "tags": dict(r.mapping(r.run.get("tags"), "tags")),
                "issues": summarize(issues),
            }
        )
    columns = list(rows[0]) if rows else _RUN_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def _node_count(run: Mapping) -> int:
    """How many nodes' wrappers recorded the run (a group's ``nodes``; else 1)."""
    nodes = run.get("nodes")
    return len(nodes) if isinstance(nodes, list) and nodes else 1


_RUN_COLUMNS = [
    "id", "name", "status", "nodes", "started_at", "configuration", "model", "dataset", "schedule",
    "drop_rate", "seed", "job", "accuracy", "fid", "energy_kwh", "co2_g", "duration_s",
    "backward_flops", "acc_per_kwh", "estimated", "energy_sources", "tags", "issues",
]  # fmt: skip


def group_runs(runs: Iterable[dict], statuses: Sequence[str] = ("finished",)) -> pd.DataFrame:
    """Pool runs of one configuration (seeds pooled); only runs whose status is in ``statuses``.

    Columns: ``configuration``, the :data:`GROUP_KEYS`, ``n_runs``, ``run_ids``, ``estimated``,
    ``ci_note``, ``issues`` (those of its runs), and for every quantity ``q`` of
    :data:`QUANTITIES`: ``q_mean``, ``q_std``, ``q_ci95`` (half-width) and ``q_n``. Undefined
    statistics are NaN, never 0. Rows are sorted by model, dataset, drop rate, schedule (then
    label).
    """
    runs = [r for r in runs if isinstance(r, Mapping) and r.get("status") in statuses]
    frame = runs_frame(runs)
    rows = []
    if not frame.empty:
        key_cols = [*GROUP_KEYS, "configuration"]
        key_frame = frame[key_cols].astype(object).where(frame[key_cols].notna())
        keys = [tuple(None if missing(v) else v for v in row) for row in key_frame.to_numpy()]
        frame = frame.assign(_key=keys)
        for key, sub in frame.groupby("_key", sort=False):
            row: dict = {"configuration": key[-1]}
            row.update(dict(zip(GROUP_KEYS, key[:-1], strict=True)))
            row["n_runs"] = len(sub)
            row["run_ids"] = list(sub["id"])
            row["estimated"] = bool(sub["estimated"].any())
            row["issues"] = [i for issues in sub["issues"] for i in issues]
            notes = set()
            for q in QUANTITIES:
                s = mean_ci(sub[q].tolist())
                row[f"{q}_mean"] = s.mean
                row[f"{q}_std"] = s.std
                row[f"{q}_ci95"] = s.ci95
                row[f"{q}_n"] = s.n
                if s.n == 1:
                    notes.add(CI_UNDEFINED_NOTE)
            row["ci_note"] = "; ".join(sorted(notes))
            rows.append(row)
    cols = ["configuration", *GROUP_KEYS, "n_runs", "run_ids", "estimated", "ci_note", "issues"]
    for q in QUANTITIES:
        cols += [f"{q}_mean", f"{q}_std", f"{q}_ci95", f"{q}_n"]
    out = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c.endswith(("_mean", "_std", "_ci95")):
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    if not out.empty:
        order = out[["model", "dataset", "drop_rate", "schedule", "configuration"]].astype(str)
        out = out.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)
    return out

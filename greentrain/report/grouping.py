"""Runs -> tables: one row per run, and runs pooled per configuration.

* **Configuration** = (model, dataset, schedule, drop_rate) from ``run["config"]`` plus every
  other config key whose value differs among the runs compared (:mod:`greentrain.report.configs`;
  ``group_by`` overrides those); only seeds and per-run noise are pooled. A run without ``model``
  in its config is its own configuration, named after the run. Dense runs (drop rate 0) pool
  whatever schedule and ssProp options they were launched with.
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

from greentrain.report.configs import pooled_over, settings, settings_label, split_keys
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


def configuration(
    run: dict, issues: list[Issue] | None = None, keys: Sequence[str] = ()
) -> tuple[tuple, str]:
    """``(key, label)``: :func:`config_key` and the label the tables show; ``keys`` are the
    config keys beyond the base four that the comparison groups by
    (:func:`~greentrain.report.configs.extra_keys`).

    The label is :func:`config_label` of the key, except for a run whose drop rate is not a
    finite number: its key's rate is ``None`` and its label's rate reads ``invalid <repr>``.
    """
    r = RunReader(run, issues)
    cfg = r.config()
    model = r.text(cfg.get("model"), "config.model")
    if model is None:
        name = r.text(r.run.get("name"), "name") or as_str(r.run.get("id"))
        key = (name, None, None, None, ())
        return key, config_label(key)
    raw_rate = cfg.get("drop_rate")
    rate = r.number(raw_rate, "config.drop_rate")
    rate = None if rate is None else round(rate, 6)
    schedule = None if rate == 0.0 else r.text(cfg.get("schedule"), "config.schedule")
    extra = settings(cfg, keys)
    key = (model, r.text(cfg.get("dataset"), "config.dataset"), schedule, rate, extra)
    if rate is None and raw_rate is not None:
        parts = [*config_label(key[:4]).split(" / ")[:3], "invalid " + describe(raw_rate)]
        label = " / ".join(parts)
        return key, label + (", " + settings_label(extra) if extra else "")
    return key, config_label(key)


def config_key(run: dict, keys: Sequence[str] = ()) -> tuple:
    """(model, dataset, schedule, drop_rate, settings); ``(name, None, None, None, ())``
    without a model. ``settings`` holds ``(key, value)`` of ``keys`` (see :func:`configuration`).

    A dense run (drop rate 0) has no schedule: whatever schedule it was launched with, it is the
    same training, so all dense runs of a model and dataset pool into one configuration.
    """
    return configuration(run, keys=keys)[0]


def config_label(key: Sequence) -> str:
    """Human label of a configuration key, e.g. ``"resnet18 / cifar10 / bar / 0.8"``, with
    the settings beyond the base four after a comma (``"... / 0.8, reselect_every=4"``)."""
    model, dataset, schedule, rate = key[:4]
    extra = key[4] if len(key) > 4 else ()
    if dataset is None and schedule is None and rate is None and not extra:
        return str(model)
    parts = [str(model), str(dataset)]
    if rate is not None and float(rate) == 0.0:
        parts.append("dense")
    else:
        parts.append(str(schedule) if schedule is not None else "?")
        parts.append(f"{rate:g}" if rate is not None else "?")
    label = " / ".join(parts)
    return label + (", " + settings_label(extra) if extra else "")


def runs_frame(
    runs: Iterable[dict], group_by: Sequence[str] | None = None, metric: str | None = None
) -> pd.DataFrame:
    """One row per run with the figures the reports use (SI units; energy in kWh).

    ``configuration`` is grouped by the config keys that vary among ``runs`` (or ``group_by``;
    see :mod:`greentrain.report.configs`); ``settings`` is its part beyond the base four keys.
    ``issues`` lists (:func:`~greentrain.report.reading.summarize`) the values of the run that
    were ignored or shown as text.
    """
    runs = list(runs)
    keys = _split_keys_per_run(runs, group_by)
    rows = []
    for run, run_keys in zip(runs, keys, strict=True):
        issues: list[Issue] = []
        r = RunReader(run, issues)
        key, label = configuration(run, issues, run_keys)
        cfg = r.config()
        acc = final_accuracy(run, issues, metric)
        kwh = run_energy_kwh(run, issues)
        rows.append(
            {
                "id": r.run.get("id"),
                "name": r.text(r.run.get("name"), "name"),
                "status": r.text(r.run.get("status"), "status"),
                "nodes": _node_count(run),
                "nodes_expected": _nodes_expected(run),
                "incomplete": run.get("incomplete") is True,
                "started_at": r.text(r.run.get("started_at"), "started_at"),
                "configuration": label,
                "model": key[0],
                "dataset": key[1],
                "schedule": key[2],
                "drop_rate": key[3],
                "settings": settings_label(key[4]),
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


def _by_base(runs: Sequence[object]) -> tuple[list[tuple], dict[tuple, list[Mapping]]]:
    """Each run's base key (model, dataset, schedule, rate) and the runs of each base key."""
    bases = [configuration(run)[0][:4] if isinstance(run, Mapping) else None for run in runs]
    members: dict[tuple, list[Mapping]] = {}
    for run, base in zip(runs, bases, strict=True):
        if base is not None:
            members.setdefault(base, []).append(run)
    return bases, members


def _split_keys_per_run(runs: Sequence[object], group_by: Sequence[str] | None) -> list[list]:
    bases, members = _by_base(runs)
    keys = split_keys(members, group_by)
    return [keys.get(base, []) if base is not None else [] for base in bases]


def pooled_keys(runs: Iterable[dict], group_by: Sequence[str] | None = None) -> list[str]:
    """Config keys in which the finished runs pooled into one configuration differ, because
    ``group_by`` left them out (:func:`~greentrain.report.configs.pooled_over`)."""
    finished = [r for r in runs if isinstance(r, Mapping) and r.get("status") == "finished"]
    return pooled_over(_by_base(finished)[1], group_by)


def splitting_keys(runs: Iterable[dict]) -> list[str]:
    """Sorted config keys beyond the base four that split the finished ``runs`` into more
    configurations (what a group-by selector offers)."""
    finished = [r for r in runs if isinstance(r, Mapping) and r.get("status") == "finished"]
    return sorted({k for keys in split_keys(_by_base(finished)[1]).values() for k in keys})


def grouped_by(groups: pd.DataFrame) -> list[str]:
    """The config keys that tell the configurations of ``groups`` apart: the base keys that
    vary, then the settings keys, in order of first appearance."""
    keys = [k for k in GROUP_KEYS if k in groups and groups[k].astype(str).nunique() > 1]
    for text in groups.get("settings", []):
        for part in str(text).split(", ") if text else []:
            name = part.split("=", 1)[0]
            if name not in keys:
                keys.append(name)
    return keys


def _node_count(run: Mapping) -> int:
    """How many nodes' wrappers recorded the run (a group's ``nodes``; else 1)."""
    nodes = run.get("nodes")
    return len(nodes) if isinstance(nodes, list) and nodes else 1


def _nodes_expected(run: Mapping) -> int | None:
    """How many nodes a group expected (its ``size``; None: unknown or not a group)."""
    size = run.get("size")
    expected = size.get("expected") if isinstance(size, Mapping) else None
    return expected if isinstance(expected, int) and not isinstance(expected, bool) else None


_RUN_COLUMNS = [
    "id", "name", "status", "nodes", "nodes_expected", "incomplete", "started_at", "configuration",
    "model", "dataset", "schedule", "drop_rate", "settings", "seed", "job", "accuracy", "fid",
    "energy_kwh", "co2_g", "duration_s", "backward_flops", "acc_per_kwh", "estimated",
    "energy_sources", "tags", "issues",
]  # fmt: skip


def group_runs(
    runs: Iterable[dict],
    statuses: Sequence[str] = ("finished",),
    group_by: Sequence[str] | None = None,
    metric: str | None = None,
) -> pd.DataFrame:
    """Pool runs of one configuration (seeds pooled); only runs whose status is in ``statuses``.
    Configurations are told apart by every config key that varies among those runs, or by
    ``group_by`` (:mod:`greentrain.report.configs`). ``metric`` is the accuracy metric
    (:func:`~greentrain.report.runs.final_accuracy`).

    Columns: ``configuration``, the :data:`GROUP_KEYS`, ``settings``, ``n_runs``, ``run_ids``,
    ``seeds``, ``estimated``, ``ci_note``, ``issues`` (those of its runs), and for every
    quantity ``q`` of
    :data:`QUANTITIES`: ``q_mean``, ``q_std``, ``q_ci95`` (half-width) and ``q_n``. Undefined
    statistics are NaN, never 0. Rows are sorted by model, dataset, drop rate, schedule (then
    label).
    """
    runs = [r for r in runs if isinstance(r, Mapping) and r.get("status") in statuses]
    frame = runs_frame(runs, group_by, metric)
    rows = []
    if not frame.empty:
        key_cols = [*GROUP_KEYS, "configuration"]
        key_frame = frame[key_cols].astype(object).where(frame[key_cols].notna())
        keys = [tuple(None if missing(v) else v for v in row) for row in key_frame.to_numpy()]
        frame = frame.assign(_key=keys)
        for key, sub in frame.groupby("_key", sort=False):
            row: dict = {"configuration": key[-1]}
            row.update(dict(zip(GROUP_KEYS, key[:-1], strict=True)))
            row["settings"] = sub["settings"].iloc[0]
            row["n_runs"] = len(sub)
            row["run_ids"] = list(sub["id"])
            row["seeds"] = [None if missing(s) else int(s) for s in sub["seed"]]
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
    cols = ["configuration", *GROUP_KEYS, "settings", "n_runs", "run_ids", "seeds"]
    cols += ["estimated", "ci_note", "issues"]
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

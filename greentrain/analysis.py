"""Turn run records into the numbers a study reports.

Every function takes run dicts (the schema of ``greentrain show --json``, see the store) and
returns plain values or pandas DataFrames; nothing here reads the store, meters or torch, so the
exporters, the CLI and the app share one implementation.

Choices, stated once:

* **Accuracy** is the *final* top-1 test accuracy (metric ``final_test_acc``, else the last
  ``test_acc`` logged), a fraction in 0..1. The best epoch is not used: picking the best epoch on
  the test set is optimistic. DDPM runs report **FID** (``fid``, else ``fid_proxy``), where lower
  is better; their accuracy fields stay ``None``.
* **Configuration** = (model, dataset, schedule, drop_rate) from ``run["config"]``; seeds (and
  every other key) are pooled. A run without ``model`` in its config is its own configuration,
  named after the run.
* **Statistics** pool the *finished* runs of a configuration: mean, sample standard deviation
  (ddof=1) and the half-width of a two-sided 95% confidence interval of the mean from Student's
  t distribution. With one run the std and the CI are undefined: they are ``None`` (NaN in a
  DataFrame) and ``ci_note`` says ``"n=1: CI undefined"`` -- never 0.
* **Accuracy per kWh** is computed per run (accuracy / kWh) and then pooled like the others.
* **Backward FLOPs** are the analytic backward FLOPs per training iteration
  (``backward_flops_per_iter``), averaged over a run's epochs (a scheduled drop rate changes
  them from epoch to epoch).
* **Estimated** energies stay flagged: a run is estimated if any energy domain's best figure is
  an estimate, and a configuration is estimated if any of its runs is.

Units: energy in kWh at this edge (``energy_kwh``; 1 kWh = 3.6e6 J), carbon in grams CO2e
(``co2_g``), time in seconds, FLOPs as counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

J_PER_KWH = 3.6e6

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

CI_UNDEFINED_NOTE = "n=1: CI undefined"


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and 95% CI half-width of ``n`` values; ``None`` where undefined."""

    n: int
    mean: float | None
    std: float | None
    ci95: float | None
    note: str = ""

    @property
    def ci_low(self) -> float | None:
        return None if self.mean is None or self.ci95 is None else self.mean - self.ci95

    @property
    def ci_high(self) -> float | None:
        return None if self.mean is None or self.ci95 is None else self.mean + self.ci95


def t_quantile_975(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scipy ships with scikit-learn, a dependency

    return float(t.ppf(0.975, df))


def summarize(values: Iterable[float | None]) -> Summary:
    """Pool ``values`` (``None``/NaN dropped): mean, std (ddof=1), 95% t-interval half-width.

    ``n == 0`` gives all ``None`` with note ``"no values"``; ``n == 1`` gives the mean and
    ``None`` for std and CI with note :data:`CI_UNDEFINED_NOTE`.
    """
    xs = [float(v) for v in values if v is not None and not _isnan(v)]
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, "no values")
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, CI_UNDEFINED_NOTE)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return Summary(n, mean, std, t_quantile_975(n - 1) * std / math.sqrt(n))


def _isnan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


# --------------------------------------------------------------------------------------------
# Reading one run
# --------------------------------------------------------------------------------------------


def last_metric(run: dict, name: str) -> float | None:
    """The last non-null value of metric ``name`` in ``run["metrics"]``, else ``None``."""
    for rec in reversed(run.get("metrics") or []):
        value = rec.get(name)
        if value is not None and not _isnan(value):
            return value
    return None


def final_accuracy(run: dict) -> float | None:
    """Final top-1 test accuracy (fraction): ``final_test_acc``, else the last ``test_acc``."""
    value = last_metric(run, "final_test_acc")
    return value if value is not None else last_metric(run, "test_acc")


def final_fid(run: dict) -> float | None:
    """Final FID (lower is better): ``fid``, else ``fid_proxy``; ``None`` if neither."""
    value = last_metric(run, "fid")
    return value if value is not None else last_metric(run, "fid_proxy")


def run_energy_kwh(run: dict) -> float | None:
    """The run's total energy in kWh (sum of best figures of all domains) or ``None``."""
    if run.get("energy_kwh") is not None:
        return float(run["energy_kwh"])
    if run.get("energy_j") is not None:
        return float(run["energy_j"]) / J_PER_KWH
    return None


def is_estimated(run: dict) -> bool:
    """True if any energy domain's best figure is an estimate (not a measurement)."""
    for dom in (run.get("energy") or {}).values():
        if isinstance(dom, dict) and dom.get("estimated"):
            return True
    return False


def energy_sources(run: dict) -> dict[str, str]:
    """``{domain: "<meter>:<method>"}`` for measured domains, ``{domain: "unavailable: why"}``."""
    out: dict[str, str] = {}
    for domain, dom in (run.get("energy") or {}).items():
        if not isinstance(dom, dict):
            continue
        if dom.get("energy_j") is None:
            out[domain] = f"unavailable: {dom.get('reason') or 'no reason recorded'}"
        else:
            out[domain] = str(dom.get("source") or "unknown")
    return out


def mean_backward_flops(run: dict) -> float | None:
    """Mean analytic backward FLOPs per iteration over the run's logged epochs."""
    vals = [
        float(r["backward_flops_per_iter"])
        for r in run.get("metrics") or []
        if r.get("backward_flops_per_iter") is not None
    ]
    return math.fsum(vals) / len(vals) if vals else None


def config_key(run: dict) -> tuple:
    """(model, dataset, schedule, drop_rate); ``(name, None, None, None)`` without a model.

    A dense run (drop rate 0) has no schedule: whatever schedule it was launched with, it is the
    same training, so all dense runs of a model and dataset pool into one configuration.
    """
    cfg = run.get("config") or {}
    if cfg.get("model") is None:
        return (str(run.get("name") or run.get("id")), None, None, None)
    rate = cfg.get("drop_rate")
    rate = None if rate is None else round(float(rate), 6)
    schedule = None if rate == 0.0 else cfg.get("schedule")
    return (str(cfg["model"]), cfg.get("dataset"), schedule, rate)


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


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def window_energy_j(window: dict) -> float | None:
    """Sum of the measured domain energies of one window (J); ``None`` if none was measured."""
    vals = [
        float(d["energy_j"])
        for d in (window.get("energy") or {}).values()
        if isinstance(d, dict) and d.get("energy_j") is not None
    ]
    return math.fsum(vals) if vals else None


def epoch_windows(run: dict) -> list[dict]:
    """The run's per-epoch windows (name starting with ``epoch``), in index order."""
    wins = [w for w in run.get("windows") or [] if str(w.get("name", "")).startswith("epoch")]
    return sorted(wins, key=lambda w: (w.get("index") is None, w.get("index") or 0))


def epoch_energies_kwh(run: dict) -> list[float | None]:
    """Energy of each epoch window in kWh (``None`` where that window was not measured)."""
    out = []
    for w in epoch_windows(run):
        e = window_energy_j(w)
        out.append(None if e is None else e / J_PER_KWH)
    return out


def accuracy_curve(run: dict, metric: str = "test_acc") -> list[dict]:
    """Per-epoch records: ``[{"epoch", "time_s", metric, "cum_energy_kwh"}]`` in time order.

    ``cum_energy_kwh`` is the energy of every window that had *started* by the time the record
    was logged (``run started_at + time_s``): the epoch being evaluated and its eval window
    count, later epochs do not. Windows nested inside another window are not counted again.
    ``None`` if the run has no measured windows.
    """
    start = _parse_time(run.get("started_at"))
    spans = []  # (start_s, end_s, energy_j) of measured windows, relative to the run's start
    for w in run.get("windows") or []:
        ws, we = _parse_time(w.get("started_at")), _parse_time(w.get("ended_at"))
        e = window_energy_j(w)
        if ws is not None and start is not None and e is not None:
            end = math.inf if we is None else (we - start).total_seconds()
            spans.append(((ws - start).total_seconds(), end, e))
    # Windows may nest (an "eval" inside an "epoch"): count only outermost ones, never twice.
    windows = sorted(
        (s0, e)
        for i, (s0, s1, e) in enumerate(spans)
        if not any(
            j != i and o0 <= s0 and s1 <= o1 and (o0, o1) != (s0, s1)
            for j, (o0, o1, _) in enumerate(spans)
        )
    )
    recs = [r for r in run.get("metrics") or [] if r.get(metric) is not None]
    recs.sort(key=lambda r: (r.get("time_s") is None, r.get("time_s") or 0.0))
    out = []
    for r in recs:
        cum = None
        t = r.get("time_s")
        if windows and t is not None:
            cum = math.fsum(e for ws, e in windows if ws <= float(t) + 1e-9) / J_PER_KWH
        out.append(
            {
                "epoch": r.get("epoch"),
                "time_s": t,
                metric: float(r[metric]),
                "cum_energy_kwh": cum,
            }
        )
    return out


def energy_to_accuracy(run: dict, target: float, metric: str = "test_acc") -> float | None:
    """kWh spent until the run first reached ``target`` (fraction) of ``metric``.

    Cumulative window energy up to and including the epoch whose evaluation first reached the
    target (see :func:`accuracy_curve`). ``None`` if the run never reached it or its windows
    were not metered.
    """
    for rec in accuracy_curve(run, metric):
        if rec[metric] >= target:
            return rec["cum_energy_kwh"]
    return None


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def runs_frame(runs: Iterable[dict]) -> pd.DataFrame:
    """One row per run with the figures the reports use (SI units; energy in kWh)."""
    rows = []
    for run in runs:
        key = config_key(run)
        cfg = run.get("config") or {}
        acc = final_accuracy(run)
        kwh = run_energy_kwh(run)
        rows.append(
            {
                "id": run.get("id"),
                "name": run.get("name"),
                "status": run.get("status"),
                "started_at": run.get("started_at"),
                "configuration": config_label(key),
                "model": key[0],
                "dataset": key[1],
                "schedule": key[2],
                "drop_rate": key[3],
                "seed": cfg.get("seed"),
                "job": cfg.get("job"),
                "accuracy": acc,
                "fid": final_fid(run),
                "energy_kwh": kwh,
                "co2_g": run.get("co2_g"),
                "duration_s": run.get("duration_s"),
                "backward_flops": mean_backward_flops(run),
                "acc_per_kwh": acc / kwh if acc is not None and kwh else None,
                "estimated": is_estimated(run),
                "energy_sources": "; ".join(f"{d}={s}" for d, s in energy_sources(run).items()),
                "tags": dict(run.get("tags") or {}),
            }
        )
    columns = list(rows[0]) if rows else _RUN_COLUMNS
    return pd.DataFrame(rows, columns=columns)


_RUN_COLUMNS = [
    "id", "name", "status", "started_at", "configuration", "model", "dataset", "schedule",
    "drop_rate", "seed", "job", "accuracy", "fid", "energy_kwh", "co2_g", "duration_s",
    "backward_flops", "acc_per_kwh", "estimated", "energy_sources", "tags",
]  # fmt: skip


def group_runs(runs: Iterable[dict], statuses: Sequence[str] = ("finished",)) -> pd.DataFrame:
    """Pool runs of one configuration (seeds pooled); only runs whose status is in ``statuses``.

    Columns: ``configuration``, the :data:`GROUP_KEYS`, ``n_runs``, ``run_ids``, ``estimated``,
    ``ci_note``, and for every quantity ``q`` of :data:`QUANTITIES`: ``q_mean``, ``q_std``,
    ``q_ci95`` (half-width) and ``q_n``. Undefined statistics are NaN, never 0. Rows are sorted
    by model, dataset, drop rate, schedule.
    """
    runs = [r for r in runs if r.get("status") in statuses]
    frame = runs_frame(runs)
    rows = []
    if not frame.empty:
        key_frame = frame[list(GROUP_KEYS)].astype(object).where(frame[list(GROUP_KEYS)].notna())
        keys = [tuple(None if _isnan(v) else v for v in row) for row in key_frame.to_numpy()]
        frame = frame.assign(_key=keys)
        for key, sub in frame.groupby("_key", sort=False):
            row: dict = {"configuration": config_label(key)}
            row.update(dict(zip(GROUP_KEYS, key, strict=True)))
            row["n_runs"] = len(sub)
            row["run_ids"] = list(sub["id"])
            row["estimated"] = bool(sub["estimated"].any())
            notes = set()
            for q in QUANTITIES:
                s = summarize(sub[q].tolist())
                row[f"{q}_mean"] = s.mean
                row[f"{q}_std"] = s.std
                row[f"{q}_ci95"] = s.ci95
                row[f"{q}_n"] = s.n
                if s.n == 1:
                    notes.add(CI_UNDEFINED_NOTE)
            row["ci_note"] = "; ".join(sorted(notes))
            rows.append(row)
    cols = ["configuration", *GROUP_KEYS, "n_runs", "run_ids", "estimated", "ci_note"]
    for q in QUANTITIES:
        cols += [f"{q}_mean", f"{q}_std", f"{q}_ci95", f"{q}_n"]
    out = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c.endswith(("_mean", "_std", "_ci95")):
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    if not out.empty:
        order = out[["model", "dataset", "drop_rate", "schedule"]].astype(str)
        out = out.loc[order.sort_values(list(order.columns)).index].reset_index(drop=True)
    return out


def pareto_mask(
    quality: Sequence[float], energy: Sequence[float], higher_is_better: bool = True
) -> list[bool]:
    """Which points are on the Pareto front (best quality, least energy).

    A point is dominated when another has energy <= and quality >= (<= if lower is better),
    strictly better in at least one. Points with a missing value are never on the front.
    """
    pts = []
    for q, e in zip(quality, energy, strict=True):
        ok = q is not None and e is not None and not _isnan(q) and not _isnan(e)
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
        if g["drop_rate"] is None or _isnan(g["drop_rate"]) or float(g["drop_rate"]) == 0.0:
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
                "accuracy_delta": None if _none(a_s) or a_d is None else a_s - a_d,
                "estimated": bool(g["estimated"] or (not dense.empty and dense["estimated"].any())),
                "baseline": ", ".join(dense["configuration"]) if not dense.empty else None,
            }
        )
    cols = [
        "configuration", "model", "dataset", "schedule", "drop_rate", "energy_saving",
        "flops_saving", "accuracy_delta", "estimated", "baseline",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _none(v: object) -> bool:
    return v is None or _isnan(v)


def _saving(sparse: float | None, dense: float | None) -> float | None:
    if _none(sparse) or _none(dense) or not dense:
        return None
    return 1.0 - float(sparse) / float(dense)


def _weighted_mean(groups: pd.DataFrame, q: str) -> float | None:
    num, den = 0.0, 0
    for _, g in groups.iterrows():
        if not _none(g[f"{q}_mean"]) and g[f"{q}_n"]:
            num += float(g[f"{q}_mean"]) * int(g[f"{q}_n"])
            den += int(g[f"{q}_n"])
    return num / den if den else None


def study_totals(runs: Iterable[dict]) -> pd.DataFrame:
    """The real cost of a study, by status and in all (failed and interrupted runs included).

    Index: each status present (``finished``, ``failed``, ``interrupted``, ``running``) then
    ``all``. Columns: ``runs``, ``energy_kwh`` (sum of the runs that have a figure),
    ``co2_g``, ``duration_s``, ``estimated_runs`` (whose energy is an estimate) and
    ``unmeasured_runs`` (no energy figure at all: not counted in the sums, so the sums are
    lower bounds when this is non-zero).
    """
    frame = runs_frame(list(runs))
    order = ["finished", "failed", "interrupted", "running"]
    rows = {}
    statuses = [s for s in order if s in set(frame["status"])] + sorted(
        set(frame["status"].dropna()) - set(order)
    )
    for status in [*statuses, "all"]:
        sub = frame if status == "all" else frame[frame["status"] == status]
        rows[status] = {
            "runs": len(sub),
            "energy_kwh": math.fsum(sub["energy_kwh"].dropna()),
            "co2_g": math.fsum(sub["co2_g"].dropna()),
            "duration_s": math.fsum(sub["duration_s"].dropna()),
            "estimated_runs": int(sub["estimated"].sum()) if len(sub) else 0,
            "unmeasured_runs": int(sub["energy_kwh"].isna().sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def energy_per_epoch_by_schedule(runs: Iterable[dict]) -> dict[str, list[float]]:
    """Mean energy (kWh) of epoch k over the finished runs of each schedule label.

    Keys are ``"dense"`` for drop rate 0 and ``"<schedule> <rate>"`` otherwise; epochs whose
    window was not measured in any run are NaN.
    """
    acc: dict[str, list[list[float]]] = {}
    for run in runs:
        if run.get("status") != "finished":
            continue
        key = config_key(run)
        label = config_label(key).split(" / ", 2)[-1] if key[1] is not None else key[0]
        label = label.replace(" / ", " ")
        for k, e in enumerate(epoch_energies_kwh(run)):
            lists = acc.setdefault(label, [])
            while len(lists) <= k:
                lists.append([])
            if e is not None:
                lists[k].append(e)
    return {
        label: [math.fsum(v) / len(v) if v else float("nan") for v in per_epoch]
        for label, per_epoch in sorted(acc.items())
    }

"""Which settings make a configuration: every config key whose value differs among the runs
compared, minus the seed and per-run noise.

Runs are pooled over seeds only. A configuration is named by the four keys every chart is drawn
on (model, dataset, schedule, drop rate: :data:`BASE_KEYS`) plus every other config key whose
value is not the same in all the runs that share those four (:func:`split_keys`): in a study of
ssProp variants, exact ssProp, ``reselect_every=4`` and ``min_channels=128`` are three
configurations, never one row with a mean no configuration has; a key that only follows the base
keys (``period`` of the bar schedule) names nothing new and is left out of the label.

Left out of the comparison (:func:`is_noise`): the seed, and what differs from run to run without
changing the training -- names, tags, paths, ids, the store, the meters and the carbon settings
(``greentrain run``'s own options, recorded in the config) -- and figures the job derived and
recorded in its config (:data:`DERIVED_KEYS`: its FLOPs plan, its steps per epoch). A dense run
(drop rate 0) has no sparse settings: its schedule and ssProp options (:data:`SPARSE_ONLY_KEYS`)
are ignored, so every dense run of a model and dataset pools into one baseline.

``group_by`` (``greentrain export --group-by``, the Compare page's selector) replaces the varying
keys; :func:`pooled_over` names the keys that then differ inside a configuration, for the warning
the surfaces show before they pool such runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

BASE_KEYS: tuple[str, ...] = ("model", "dataset", "schedule", "drop_rate")

# Keys that name, locate or meter a run rather than configure its training.
NOISE_KEYS: frozenset[str] = frozenset(
    {
        "seed", "name", "run_name", "tags", "store", "out", "output", "resume", "progress", "id",
        "run_id", "cwd", "command", "meter", "meters", "country", "region", "carbon_intensity",
        "pue", "budget_kwh", "budget_gco2", "budget_forecast", "download",
    }
)  # fmt: skip
NOISE_SUFFIXES: tuple[str, ...] = ("_dir", "_path", "_file", "_id", "_url", "_uri")

# Figures a job computes from its settings and records next to them: outcomes, not settings.
DERIVED_KEYS: frozenset[str] = frozenset(
    {"backward_flops_per_epoch", "backward_flops_per_iter", "steps_per_epoch", "total_steps"}
)

# Another name of the same setting: ``greentrain train --drop`` records both.
ALIASES: Mapping[str, str] = {"drop": "drop_rate"}

# Settings that exist only for a sparse run; a dense run (drop rate 0) ignores them.
SPARSE_ONLY_KEYS: frozenset[str] = frozenset(
    {
        "schedule", "period", "period_unit", "warmup", "selection", "dims", "reselect_every",
        "min_channels", "sparse_linear", "backend",
    }
)  # fmt: skip


def is_noise(key: str) -> bool:
    """Whether config ``key`` is the seed or per-run noise (never a configuration key)."""
    return (
        key in NOISE_KEYS or key in DERIVED_KEYS or key.endswith(NOISE_SUFFIXES) or key in ALIASES
    )


def canonical(value: object) -> str:
    """A hashable text of a config value, equal for equal values (``[1, 2]`` == ``(1, 2)``)."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def is_dense(config: Mapping) -> bool:
    """Whether the config's drop rate is 0 (a dense run)."""
    rate = config.get("drop_rate")
    return isinstance(rate, (int, float)) and not isinstance(rate, bool) and float(rate) == 0.0


def relevant(config: Mapping, key: str) -> bool:
    """Whether ``key`` configures this run (a sparse-only key of a dense run does not)."""
    return not (key in SPARSE_ONLY_KEYS and is_dense(config))


def _configs(runs: Iterable[Mapping]) -> list[Mapping]:
    out = []
    for run in runs:
        cfg = run.get("config") if isinstance(run, Mapping) else None
        out.append(cfg if isinstance(cfg, Mapping) else {})
    return out


def varying_keys(runs: Iterable[Mapping]) -> list[str]:
    """Sorted config keys (not :func:`is_noise`) whose value differs among ``runs``.

    A key missing from some runs differs from one present in others; a sparse-only key is
    compared among the sparse runs only.
    """
    configs = _configs(runs)
    keys = sorted({k for cfg in configs for k in cfg if isinstance(k, str) and not is_noise(k)})
    out = []
    for key in keys:
        values = {canonical(cfg.get(key)) for cfg in configs if relevant(cfg, key)}
        if len(values) > 1:
            out.append(key)
    return out


def split_keys(
    runs_by_base: Mapping[object, Sequence[Mapping]], group_by: Sequence[str] | None = None
) -> dict[object, list[str]]:
    """For each base configuration (runs sharing :data:`BASE_KEYS`), the keys beyond those that
    split its runs further: :func:`varying_keys` among its runs, restricted to ``group_by`` when
    given (``[]`` then pools everything but the base keys)."""
    out = {}
    for base, members in runs_by_base.items():
        keys = [k for k in varying_keys(members) if k not in BASE_KEYS]
        out[base] = keys if group_by is None else [k for k in keys if k in group_by]
    return out


def pooled_over(
    runs_by_base: Mapping[object, Sequence[Mapping]], group_by: Sequence[str] | None
) -> list[str]:
    """Sorted keys in which runs of one configuration differ because ``group_by`` left them
    out: the surfaces warn before they pool such runs. Empty without ``group_by``."""
    if group_by is None:
        return []
    left = set()
    for members in runs_by_base.values():
        left |= {k for k in varying_keys(members) if k not in BASE_KEYS and k not in group_by}
    return sorted(left)


def settings(config: Mapping, keys: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``((key, canonical value), ...)`` of ``keys`` relevant to this config (a dense run has
    none of the sparse-only ones): the part of a configuration key beyond the base keys."""
    return tuple((k, canonical(config.get(k))) for k in keys if relevant(config, k))


def settings_label(items: Sequence[tuple[str, str]]) -> str:
    """``"reselect_every=4, min_channels=128"`` (text values unquoted); ``""`` for none."""
    parts = []
    for key, text in items:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parts.append(f"{key}={value if isinstance(value, str) else text}")
    return ", ".join(parts)

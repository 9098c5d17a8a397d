"""What a run record becomes in an experiment tracker (MLflow, W&B), decided once for both and
for both ways in (``greentrain export --to`` after the fact, ``greentrain run --mirror`` live).

Names, units and steps are :mod:`greentrain.integrations.names`' (one table for the callbacks,
the mirror and the export):

* **Per window**: ``greentrain/<window>.energy_j``, ``.energy_kwh``, ``.co2_g`` (with the run's
  intensity and PUE), ``.duration_s`` and ``.<domain>_energy_j`` per measured domain, at the
  trainer's step at the window's end (the last step of the metrics logged in it), else at the
  window's number among the windows of its name (1, 2, ...).
* **Metrics the script logged** (``client.log``, e.g. the callbacks' accuracy): each numeric
  value under its own name at its entry's ``step`` (else its position), stamped with the time
  it was logged; greentrain's own names (``greentrain/...``) the callbacks logged are not sent
  again.
* **Totals**: ``greentrain/energy_j``, ``energy_kwh``, ``co2_g``, ``duration_s``,
  ``<domain>_energy_j`` and ``net_energy_j`` (after a baseline).
* **Params**: the carbon factors (``carbon.intensity_g_per_kwh``, ``carbon.source``,
  ``carbon.year``, ``carbon.pue``, ``carbon.country``, ``carbon.region``), the provenance of each
  domain's figure (``energy.<domain>.source`` and ``.estimated``, or ``.unavailable`` with the
  reason), every meter's state (``meter.<name>``) and the script's ``config.<key>``.
* **Tags**: ``greentrain.run_id``, ``greentrain.name``, ``greentrain.status`` and the run's own
  tags (a tag in MLflow's reserved ``mlflow.`` namespace goes under ``greentrain.tag.``).

Every value is read through :class:`~greentrain.report.reading.RunReader`: a value that is not a
finite number is left out, never sent as 0. Keys are made acceptable to both trackers
(:func:`tracker_key`); text values are cut to :data:`MAX_VALUE_CHARS`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greentrain.integrations import names
from greentrain.record.evidence import EVIDENCE_PARAMS
from greentrain.report.escape import as_str, plain_text
from greentrain.report.reading import RunReader, check_number
from greentrain.report.runs import carbon_factors, parse_time
from greentrain.units import joules_to_kwh

MAX_KEY_CHARS = 250  # MLflow's limit for metric, param and tag keys
MAX_VALUE_CHARS = 500  # the smallest param value limit among MLflow versions
_KEY_BAD = re.compile(r"[^\w\-. /:]", flags=re.ASCII)


@dataclass(frozen=True)
class Point:
    """One step-indexed metric value; ``timestamp_ms`` is Unix milliseconds (None: now);
    ``axis`` names what its step counts: W&B plots the value against it (one axis for all)."""

    key: str
    value: float
    step: int
    timestamp_ms: int | None = None
    axis: str = names.STEP_AXIS


def tracker_key(text: object) -> str:
    """``text`` as a key both MLflow and W&B accept: ASCII letters, digits, ``_ - . / :`` and
    spaces; anything else becomes ``_``; at most :data:`MAX_KEY_CHARS` characters."""
    key = _KEY_BAD.sub("_", plain_text(text)).strip() or "_"
    return key[:MAX_KEY_CHARS]


def tracker_text(value: object) -> str:
    """A param or tag value: plain text (no control characters), cut to the limit."""
    text = plain_text(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _number(value: object, nonnegative: bool = False) -> float | None:
    return check_number(value, nonnegative)[0]


def _ms(unix_s: float | None) -> int | None:
    return None if unix_s is None else int(round(unix_s * 1000))


# -- windows and metrics ------------------------------------------------------------------------


def window_values(
    energy: Mapping[str, Any], intensity_g_per_kwh: float | None, pue: float | None
) -> dict[str, float]:
    """``{energy_j, energy_kwh, co2_g, <domain>_energy_j}`` of one window's energy figures
    (those known; empty when nothing was measured: never zeros)."""
    out: dict[str, float] = {}
    total = []
    for domain, figure in energy.items() if isinstance(energy, Mapping) else ():
        joules = _number(figure.get("energy_j"), True) if isinstance(figure, Mapping) else None
        if joules is not None:
            out[names.domain_quantity(domain)] = joules
            total.append(joules)
    if total:
        energy_j = sum(total)
        out["energy_j"] = energy_j
        out["energy_kwh"] = joules_to_kwh(energy_j)
        if intensity_g_per_kwh is not None and pue is not None:
            out["co2_g"] = joules_to_kwh(energy_j) * intensity_g_per_kwh * pue
    return out


class StepCounter:
    """Each window's number: its position among the windows of its name seen so far, from 1."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def next(self, name: str) -> int:
        self._seen[name] += 1
        return self._seen[name]


def window_points(
    name: object,
    step: int,
    energy: Mapping[str, Any],
    duration_s: object,
    ended_unix: float | None,
    intensity_g_per_kwh: float | None,
    pue: float | None,
) -> list[Point]:
    """The points of one closed window at ``step`` (see the module docstring)."""
    values = window_values(energy, intensity_g_per_kwh, pue)
    duration = _number(duration_s, True)
    if duration is not None:
        values["duration_s"] = duration
    ts = _ms(ended_unix)
    return [Point(names.window_name(name, k), v, step, ts) for k, v in values.items()]


def entry_metrics(entry: Mapping[str, Any]) -> tuple[int | None, float | None, dict[str, float]]:
    """``(step, time_s, {key: value})`` of one metric entry, in the record's flat form
    (``{step, window, time_s, name: value}``) or a listener's (``{..., "metrics": {...}}``);
    only finite numbers are kept (true/false and text are not numbers)."""
    values = entry.get("metrics") if isinstance(entry.get("metrics"), Mapping) else entry
    out = {}
    for name, value in values.items():
        if name in ("step", "window", "time_s") and values is entry or names.is_greentrain(name):
            continue
        number = _number(value)
        if number is not None:
            out[tracker_key(name)] = number
    step = entry.get("step")
    step = step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None
    return step, _number(entry.get("time_s"), True), out


class MetricSteps:
    """Steps for metric values: the entry's step, else the value's position for its key."""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()

    def points(
        self, entry: Mapping[str, Any], timestamp_ms: int | None, seen: set | None = None
    ) -> list[Point]:
        """The points of ``entry``; with ``seen``, values already sent are skipped (a value
        logged inside nested windows arrives with each of them)."""
        step, time_s, values = entry_metrics(entry)
        out = []
        for key, value in values.items():
            if seen is not None:
                ident = (key, step, time_s, value)
                if ident in seen:
                    continue
                seen.add(ident)
            at = step if step is not None else self._count[key]
            self._count[key] += 1
            out.append(Point(key, value, at, timestamp_ms))
        return out


# -- a whole record -----------------------------------------------------------------------------


def window_steps(run: Mapping[str, Any]) -> list[int]:
    """Each window's step (by position in the record): the last step of the metrics logged in
    it (same window name, logged after the previous window of that name ended and by its own
    end), else its number among the windows of its name."""
    r = RunReader(run)
    started = parse_time(r.run.get("started_at"))
    logged = []
    for _, entry in r.metrics():
        time_s = _number(entry.get("time_s"), True)
        if started is not None and time_s is not None:
            logged.append((started.timestamp() + time_s, entry))
    numbers, previous_end, out = StepCounter(), {}, []
    for _, w in r.windows():
        name = as_str(w.get("name"))
        number = numbers.next(name)
        ended = parse_time(w.get("ended_at"))
        end = ended.timestamp() if ended is not None else None
        lo = previous_end.get(name, float("-inf"))
        inside = [e for t, e in logged if e.get("window") == name and end is not None
                  and lo < t <= end + 1e-3]  # fmt: skip  # stored times: milliseconds
        if end is not None:
            previous_end[name] = end
        step = names.last_step(inside)
        out.append(number if step is None else step)
    return out


def record_points(run: Mapping[str, Any]) -> list[Point]:
    """Every step-indexed point of a stored run: windows, then the metrics it logged."""
    r = RunReader(run)
    intensity, pue, readable = carbon_factors(dict(r.run))
    intensity = intensity if readable else None
    points = []
    for (_, w), step in zip(r.windows(), window_steps(run), strict=True):
        ended = parse_time(w.get("ended_at"))
        points += window_points(
            w.get("name"),
            step,
            r.mapping(w.get("energy"), "window.energy"),
            w.get("duration_s"),
            None if ended is None else ended.timestamp(),
            intensity,
            pue,
        )
    started = parse_time(r.run.get("started_at"))
    metric_steps = MetricSteps()
    for _, entry in r.metrics():
        time_s = _number(entry.get("time_s"), True)
        ts = None if started is None or time_s is None else _ms(started.timestamp() + time_s)
        points += metric_steps.points(entry, ts)
    return points


def totals(run: Mapping[str, Any]) -> dict[str, float]:
    """The run's totals (those that are finite numbers), by their names."""
    r = RunReader(run)
    out = {}
    for key in ("energy_j", "energy_kwh", "co2_g", "duration_s", "net_energy_j"):
        value = _number(r.run.get(key), nonnegative=key != "net_energy_j")
        if value is not None:
            out[names.total_name(key)] = value
    for domain, figure in r.energy().items():
        joules = _number(figure.get("energy_j"), True)
        if joules is not None:
            out[names.total_name(names.domain_quantity(domain))] = joules
    return out


def params(run: Mapping[str, Any]) -> dict[str, str]:
    """Carbon factors, provenance per domain, meters and config (see the module docstring)."""
    r = RunReader(run)
    out: dict[str, str] = {}
    carbon = r.mapping(r.run.get("carbon"), "carbon")
    for key in ("intensity_g_per_kwh", "source", "year", "pue", "country", "region"):
        if carbon.get(key) is not None:
            out[f"carbon.{key}"] = tracker_text(carbon[key])
    for domain, figure in r.energy().items():
        key = f"energy.{tracker_key(domain)}"
        if figure.get("energy_j") is None:
            out[f"{key}.unavailable"] = tracker_text(figure.get("reason") or "no reason recorded")
            continue
        out[f"{key}.source"] = tracker_text(figure.get("source"))
        out[f"{key}.estimated"] = "true" if figure.get("estimated") else "false"
    for m in r.records(r.run.get("meters"), "meters"):
        meter = m[1]
        if meter.get("error"):
            state = f"error: {as_str(meter['error'])}"
        elif meter.get("available"):
            state = "available"
        else:
            state = f"unavailable: {as_str(meter.get('reason') or 'no reason recorded')}"
        out[f"meter.{tracker_key(meter.get('meter'))}"] = tracker_text(state)
    for key, value in r.config().items():
        out[f"config.{tracker_key(key)}"] = tracker_text(value)
    for _, alt in r.records(r.run.get("energy_alternatives"), "energy_alternatives"):
        if alt.get("evidence"):  # another meter's figures (greentrain.record.evidence)
            for field in EVIDENCE_PARAMS:
                if alt.get(field) is not None:
                    out[f"evidence.{tracker_key(alt.get('meter'))}.{field}"] = tracker_text(
                        alt[field]
                    )
    return {tracker_key(k): v for k, v in out.items()}


def tags(run: Mapping[str, Any], status: str | None = None) -> dict[str, str]:
    """``greentrain.run_id``, ``greentrain.name``, ``greentrain.status`` and the run's tags."""
    r = RunReader(run)
    out = {
        "greentrain.run_id": tracker_text(r.run.get("id")),
        "greentrain.name": tracker_text(r.run.get("name")),
        "greentrain.status": tracker_text(status or r.run.get("status")),
    }
    for key, value in r.mapping(r.run.get("tags"), "tags").items():
        key = tracker_key(key)
        if key.startswith(("mlflow.", "greentrain.")):
            key = f"greentrain.tag.{key}"
        out[key] = tracker_text(value)
    return out


def config_params(params_: Mapping[str, Any]) -> dict[str, str]:
    """``client.config`` params as ``config.<key>`` params (the live mirror's on_config)."""
    return {tracker_key(f"config.{tracker_key(k)}"): tracker_text(v) for k, v in params_.items()}

"""Energy readings as meters produce them, and the arithmetic on them: differences between two
instants (a window, or the job since launch) and the flat rows the store keeps.

A reading is *cumulative*: joules of one device in one domain since the meter started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from greentrain.record.vocabulary import CUMULATIVE_DETAIL_KEYS, reading_scope


@dataclass(frozen=True)
class EnergyReading:
    """Cumulative energy of one device in one domain since the meter started.

    Attributes:
        domain: ``"gpu"``, ``"cpu"`` or ``"dram"``.
        device: a stable device label, e.g. ``"gpu:0"`` (index as the job sees it),
            ``"package-0"``, ``"host"``.
        energy_j: joules since ``start()``; always measured or estimated, never a placeholder.
        method: how the figure was obtained (see :mod:`greentrain.record.vocabulary`).
            ``estimated`` figures are labelled as such in every report.
        detail: free-form provenance (device model, sampling interval, TDP used, ...). Never
            holds environment variable values or credentials.
    """

    domain: str
    device: str
    energy_j: float
    method: str
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


Readings = dict[str, list[EnergyReading]]
"""Meter name -> that meter's readings."""


def diff_readings(end: Readings, begin: Readings | None) -> Readings:
    """``end - begin`` per meter x domain x device, in joules.

    A meter that has readings at ``end`` but none at a non-empty ``begin`` is dropped: it had no
    reading when the span opened, so there is no honest difference. The detail's cumulative
    counts (:data:`CUMULATIVE_DETAIL_KEYS`: CPU-seconds, RSS GB-hours, samples) are differenced
    the same way, so a window's figure states the inputs of that window alone.
    """
    out: Readings = {}
    for meter, readings in end.items():
        opened = {(r.domain, r.device): r for r in (begin or {}).get(meter, [])}
        base = {key: r.energy_j for key, r in opened.items()}
        if begin and meter not in begin:
            continue
        out[meter] = [
            EnergyReading(
                domain=r.domain,
                device=r.device,
                energy_j=r.energy_j - base.get((r.domain, r.device), 0.0),
                method=r.method,
                detail=_diff_detail(r.detail, opened.get((r.domain, r.device))),
            )
            for r in readings
        ]
    return out


def _diff_detail(detail: Mapping[str, Any], begin: EnergyReading | None) -> dict:
    """``detail`` with its cumulative counts less those of ``begin`` (same device)."""
    out = dict(detail)
    if begin is None:
        return out
    for key in CUMULATIVE_DETAIL_KEYS:
        end_v, begin_v = detail.get(key), begin.detail.get(key)
        if _is_number(end_v) and _is_number(begin_v):
            out[key] = end_v - begin_v
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def readings_rows(readings: Mapping[str, list[EnergyReading]]) -> list[dict[str, Any]]:
    """Flatten readings into store rows: meter, domain, device, method, energy_j, detail."""
    return [
        {
            "meter": meter,
            "domain": r.domain,
            "device": r.device,
            "method": r.method,
            "energy_j": r.energy_j,
            "detail": r.detail,
        }
        for meter, rs in readings.items()
        for r in rs
    ]


def sample_readings(
    readings: Mapping[str, list[EnergyReading]], job_on_device: Mapping[str, bool] | None = None
) -> list[dict[str, Any]]:
    """Readings as a timeline sample stores them: meter, domain, device, method, energy_j
    (cumulative joules), scope (``process`` or ``machine``) and, for GPUs, the device's uuid
    (``gpu:0`` depends on each job's CUDA_VISIBLE_DEVICES; the uuid names the physical device)
    and ``job_on_device`` when known (whether the job had processes on it).

    A GPU the job was seen on whose energy another run of its group meters (so it has no
    reading here) gets an entry of its own, ``{"uuid", "job_on_device"}``: the split among
    concurrent runs needs to know that the group used it."""
    out = []
    seen: set[str] = set()
    for meter, rs in readings.items():
        for r in rs:
            entry = {
                "meter": meter,
                "domain": r.domain,
                "device": r.device,
                "method": r.method,
                "energy_j": r.energy_j,
                "scope": reading_scope(r.method, r.detail),
            }
            if r.detail.get("uuid"):
                entry["uuid"] = r.detail["uuid"]
                seen.add(entry["uuid"])
                if job_on_device and r.detail["uuid"] in job_on_device:
                    entry["job_on_device"] = job_on_device[r.detail["uuid"]]
            out.append(entry)
    for uuid, flag in (job_on_device or {}).items():
        if uuid not in seen:
            out.append({"uuid": uuid, "job_on_device": bool(flag)})
    return out


def extrapolate_head(
    readings: list[EnergyReading], head_s: float, measured_s: float
) -> list[EnergyReading]:
    """A late meter's readings, scaled to the whole job.

    The meter started ``head_s`` seconds after the job and measured the next ``measured_s``
    seconds; the head is filled in at the mean power it measured, and each reading's detail
    says so (``late_start``: head_s, measured_s, extrapolated_j).
    """
    if measured_s <= 0 or head_s <= 0:
        return readings
    scale = (head_s + measured_s) / measured_s
    out = []
    for r in readings:
        note = {"head_s": head_s, "measured_s": measured_s,
                "extrapolated_j": r.energy_j * (scale - 1.0),
                "method": "meter ready after the job started; its first head_s seconds are "
                          "filled in at its mean power over the rest"}  # fmt: skip
        out.append(
            EnergyReading(
                r.domain, r.device, r.energy_j * scale, r.method, {**r.detail, "late_start": note}
            )  # fmt: skip
        )
    return out

"""Hand another meter's figures for the run to greentrain, as evidence beside its own.

When CodeCarbon (HF's ``report_to=["codecarbon"]``, or a script's own ``EmissionsTracker``)
or Zeus (``ZeusMonitor``) measured the same run in the same process, their figures are stored
with the run and shown beside greentrain's with the disagreement in % and why it differs
(:mod:`greentrain.record.evidence`); they are never added to greentrain's totals::

    from greentrain.integrations.evidence import codecarbon_evidence, zeus_evidence

    tracker.stop()                      # CodeCarbon: after it stopped
    codecarbon_evidence(tracker)
    zeus_evidence(monitor.end_window("train"))   # Zeus: a window's Measurement

Both are no-ops outside a greentrain run (``greentrain run``, ``track()`` or a callback's own
run) and return the message they sent (None when there was nothing to send). The Transformers
callback calls :func:`codecarbon_evidence` itself for HF's ``CodeCarbonCallback``; both
callbacks take ``others=[...]`` (:func:`others_evidence`) for meters the script runs itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from greentrain import client
from greentrain.units import kwh_to_joules

CODECARBON_DOMAINS = {"cpu_energy": "cpu", "gpu_energy": "gpu", "ram_energy": "dram"}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def codecarbon_figures(data: Any) -> dict[str, Any] | None:
    """The evidence in CodeCarbon's ``EmissionsData`` (kWh and kg -> J and g); None for none.
    CodeCarbon's 0 kWh for GPUs it did not find is left out (no figure, not 0 J).

    Intensity (g/kWh) is CodeCarbon's own: its emissions over its energy, from its energy mix
    for the country (and region, or cloud region) it located."""
    if data is None:
        return None
    energy = {
        domain: kwh_to_joules(value)
        for field, domain in CODECARBON_DOMAINS.items()
        if (value := _finite(getattr(data, field, None))) is not None
    }
    if not _finite(getattr(data, "gpu_count", None)):  # no GPU found: its 0 kWh is no figure
        energy.pop("gpu", None)
    total_kwh = _finite(getattr(data, "energy_consumed", None))
    emissions_kg = _finite(getattr(data, "emissions", None))
    co2_g = emissions_kg * 1000.0 if emissions_kg is not None else None
    intensity = co2_g / total_kwh if co2_g is not None and total_kwh else None
    country = getattr(data, "country_name", None) or getattr(data, "country_iso_code", None)
    iso, region = getattr(data, "country_iso_code", None), getattr(data, "region", None)
    cloud = getattr(data, "cloud_region", None) if getattr(data, "on_cloud", "N") == "Y" else None
    where = cloud or "/".join(str(p) for p in (iso, region) if p) or None
    mode = str(getattr(data, "tracking_mode", None) or "machine")
    return {
        "meter": "codecarbon", "method": f"{mode} model", "scope": mode, "energy_j": energy,
        "co2_g": co2_g, "intensity_g_per_kwh": intensity,
        "intensity_source": f"codecarbon energy mix of {country or where or 'unknown'}",
        "region": where, "duration_s": _finite(getattr(data, "duration", None)),
    }  # fmt: skip


def codecarbon_evidence(tracker: Any) -> dict[str, Any] | None:
    """Send a stopped CodeCarbon tracker's figures (``tracker.final_emissions_data``) to the
    run; None when it has none (never stopped, or no figure)."""
    info = codecarbon_figures(getattr(tracker, "final_emissions_data", None))
    if info is not None:
        client.evidence(info)
    return info


def zeus_figures(measurement: Any) -> dict[str, Any]:
    """The evidence in Zeus's ``Measurement`` (joules per GPU, per RAPL zone): per domain."""
    energy: dict[str, float] = {}
    for field, domain in (("gpu_energy", "gpu"), ("cpu_energy", "cpu"), ("dram_energy", "dram")):
        values = getattr(measurement, field, None)
        if isinstance(values, Mapping) and values:
            energy[domain] = math.fsum(float(v) for v in values.values())
    return {
        "meter": "zeus", "method": "counter", "scope": "devices", "energy_j": energy,
        "co2_g": None, "intensity_g_per_kwh": None, "intensity_source": None, "region": None,
        "duration_s": _finite(getattr(measurement, "time", None)),
    }  # fmt: skip


def zeus_evidence(measurement: Any) -> dict[str, Any]:
    """Send a ZeusMonitor window's ``Measurement`` to the run (see :func:`zeus_figures`)."""
    info = zeus_figures(measurement)
    client.evidence(info)
    return info


def others_evidence(others: Iterable[Any]) -> list[dict[str, Any]]:
    """Send each of ``others`` at the end of training, before the run closes: a CodeCarbon
    tracker (stopped first if it still runs; a later ``stop()`` returns the same figures), a
    Zeus ``Measurement``, or a callable returning one (``lambda: monitor.end_window("fit")``).
    Returns the messages sent."""
    sent = []
    for other in others:
        if callable(other) and not hasattr(other, "stop"):
            other = other()
        if hasattr(other, "gpu_energy"):
            sent.append(zeus_evidence(other))
        elif hasattr(other, "stop"):
            if getattr(other, "final_emissions_data", None) is None:
                other.stop()
            info = codecarbon_evidence(other)
            sent += [info] if info is not None else []
        else:
            raise TypeError(f"not a CodeCarbon tracker nor a Zeus Measurement: {other!r}")
    return sent

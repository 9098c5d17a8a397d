"""Every unit conversion of greentrain, in one place.

Inside the package every quantity is SI with its unit in the name: ``energy_j`` (joules),
``duration_s`` (seconds), ``power_w`` (watts), ``co2_g`` (grams CO2e). Kilowatt-hours and
kilograms appear only at the edges (reports, tables, the app), converted here.

Carbon: ``CO2e (g) = energy (kWh) x grid intensity (gCO2e/kWh) x PUE``.
"""

from __future__ import annotations

import time

J_PER_KWH = 3.6e6  # 1 kWh = 1000 W x 3600 s


def joules_to_kwh(energy_j: float) -> float:
    """Joules -> kilowatt-hours."""
    return energy_j / J_PER_KWH


def kwh_to_joules(energy_kwh: float) -> float:
    """Kilowatt-hours -> joules."""
    return energy_kwh * J_PER_KWH


def co2_g(energy_j: float, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams CO2e of ``energy_j`` joules at ``intensity_g_per_kwh`` (gCO2e/kWh) and ``pue``."""
    return joules_to_kwh(energy_j) * float(intensity_g_per_kwh) * float(pue)


def format_energy(energy_j: float | None) -> str:
    """Joules in a readable unit (``"812 J"``, ``"4.2 kJ"``, ``"1.3 MJ"``); ``"n/a"`` for None."""
    if energy_j is None:
        return "n/a"
    for unit, scale in (("MJ", 1e6), ("kJ", 1e3)):
        if abs(energy_j) >= scale:
            return f"{energy_j / scale:.3g} {unit}"
    return f"{energy_j:.3g} J"


def iso_utc(unix_s: float) -> str:
    """Unix seconds -> ISO-8601 UTC with milliseconds (``2026-11-23T03:16:31.123Z``)."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_s)) + f".{int(unix_s % 1 * 1000):03d}Z"
    )

"""The one unit policy of every surface (app, CLI tables, exports, figures).

* **Energy** in SI-prefixed watt-hours, **carbon** in SI-prefixed grams of CO2e, the prefix chosen
  once per table (:func:`policy_for`) so that its smallest non-zero figure reads at least 1 in it:
  no figure needs e-notation and every row of a column shares a unit.
* **Accuracy per energy** is accuracy in percentage points per the table's energy unit
  (``%/Wh``): the same figure reads the same on every surface that shows the same runs, because
  every surface asks this module.
* Numbers have 3 significant digits with thousands separators (:func:`readable`).

The conversions themselves (J -> kWh) are :mod:`greentrain.units`'; this module only chooses
how a figure is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from greentrain.report.stats import missing


def _infinite(v: float, latex: bool) -> str:
    sign = "-" if v < 0 else ""
    return f"${sign}\\infty$" if latex else f"{sign}inf"


def fmt_sig(value: float | None, digits: int = 3, latex: bool = False) -> str:
    """``value`` to ``digits`` significant digits; scientific notation outside 1e-3..1e6."""
    if missing(value):
        return "--" if latex else "n/a"
    v = float(value)
    if math.isinf(v):
        return _infinite(v, latex)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e6:
        decimals = max(digits - 1 - math.floor(math.log10(abs(v))), 0)
        return f"{v:.{decimals}f}"
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    return rf"${mant}\times10^{{{int(exp)}}}$" if latex else f"{mant}e{int(exp)}"


def readable(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits with thousands separators and no scientific
    notation (``16,600``, ``0.0562``, ``1,230,000``); ``n/a`` when missing, ``inf`` when
    infinite; scientific only outside 1e-6..1e15, where no unit choice helps."""
    if missing(value):
        return "n/a"
    v = float(value)
    if math.isinf(v):
        return _infinite(v, False)
    if v == 0:
        return "0"
    if not 1e-6 <= abs(v) < 1e15:
        return fmt_sig(v, digits)
    magnitude = math.floor(math.log10(abs(v)))
    rounded = round(v, digits - 1 - magnitude)
    if rounded and math.floor(math.log10(abs(rounded))) > magnitude:  # 9.996 -> 10.0
        magnitude += 1
    decimals = max(digits - 1 - magnitude, 0)
    return f"{rounded:,.{decimals}f}"


# (unit, factor from kWh), smallest first.
ENERGY_UNITS: tuple[tuple[str, float], ...] = (
    ("mWh", 1e6),
    ("Wh", 1e3),
    ("kWh", 1.0),
    ("MWh", 1e-3),
    ("GWh", 1e-6),
)
# (unit, factor from grams), smallest first.
MASS_UNITS: tuple[tuple[str, float], ...] = (
    ("mg", 1e3),
    ("g", 1.0),
    ("kg", 1e-3),
    ("t", 1e-6),
)


def _finite(values: Iterable[object]) -> list[float]:
    out = []
    for v in values:
        if missing(v):
            continue
        f = abs(float(v))  # type: ignore[arg-type]
        if f > 0 and math.isfinite(f):
            out.append(f)
    return out


def _choose(values: Iterable[object], units: tuple[tuple[str, float], ...]) -> tuple[str, float]:
    """The largest unit in which the smallest non-zero value is still >= 1 (the smallest unit
    when even that is too large; the base unit without values)."""
    xs = _finite(values)
    if not xs:
        return units[1] if len(units) > 2 else units[0]
    smallest = min(xs)
    best = units[0]
    for unit, factor in units:
        if smallest * factor >= 1.0:
            best = (unit, factor)
    return best


@dataclass(frozen=True)
class UnitPolicy:
    """The units of one table or figure: energy (from kWh) and carbon (from grams)."""

    energy_unit: str = "kWh"
    energy_factor: float = 1.0
    mass_unit: str = "g"
    mass_factor: float = 1.0

    @property
    def per_energy_unit(self) -> str:
        """The unit of accuracy per energy: ``"%/Wh"``."""
        return f"%/{self.energy_unit}"

    def energy_value(self, kwh: float | None) -> float | None:
        return None if missing(kwh) else float(kwh) * self.energy_factor  # type: ignore[arg-type]

    def energy(self, kwh: float | None, unit: bool = False) -> str:
        """``kwh`` in this table's energy unit (``"56.2"``; ``"56.2 Wh"`` with ``unit``)."""
        text = readable(self.energy_value(kwh))
        return f"{text} {self.energy_unit}" if unit and text != "n/a" else text

    def mass_value(self, grams: float | None) -> float | None:
        return None if missing(grams) else float(grams) * self.mass_factor  # type: ignore[arg-type]

    def mass(self, grams: float | None, unit: bool = False) -> str:
        """``grams`` of CO2e in this table's unit (``"1.20"``; ``"1.20 kg"`` with ``unit``)."""
        text = readable(self.mass_value(grams))
        return f"{text} {self.mass_unit}" if unit and text != "n/a" else text

    def per_energy_value(self, fraction_per_kwh: float | None) -> float | None:
        """Accuracy (fraction) per kWh -> percentage points per this table's energy unit."""
        if missing(fraction_per_kwh):
            return None
        return float(fraction_per_kwh) * 100.0 / self.energy_factor  # type: ignore[arg-type]

    def per_energy(self, fraction_per_kwh: float | None, unit: bool = False) -> str:
        text = readable(self.per_energy_value(fraction_per_kwh))
        return f"{text} {self.per_energy_unit}" if unit and text != "n/a" else text


def policy_for(energies_kwh: Iterable[object] = (), co2_g: Iterable[object] = ()) -> UnitPolicy:
    """The :class:`UnitPolicy` of a table whose energies (kWh) and carbon (g) are given."""
    e_unit, e_factor = _choose(energies_kwh, ENERGY_UNITS)
    m_unit, m_factor = _choose(co2_g, MASS_UNITS)
    return UnitPolicy(e_unit, e_factor, m_unit, m_factor)


def energy_text(kwh: float | None) -> str:
    """One energy on its own (a sentence, a total): ``"56.2 Wh"``, ``"1.50 kWh"``."""
    return policy_for([kwh]).energy(kwh, unit=True)


def mass_text(grams: float | None) -> str:
    """One carbon figure on its own: ``"576 g CO2e"``, ``"1.20 kg CO2e"``."""
    text = policy_for(co2_g=[grams]).mass(grams, unit=True)
    return text if text == "n/a" else f"{text} CO2e"

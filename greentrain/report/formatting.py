"""Text for tables: numbers to significant digits, mean ± std, readable quantities (``56.2 Wh``,
``1.20 kg``, ``16,600``), and the escapes of :mod:`greentrain.report.escape` under their
historical names.

Every text that came from a user (run names, model names, tags) goes through an escape before
it enters a table. Infinite figures (a sum that overflowed) print as ``inf``
(``$\\infty$`` in LaTeX); missing ones as ``n/a`` (``--``).
"""

from __future__ import annotations

import math

from greentrain.report.escape import latex_text, markdown_text
from greentrain.report.stats import missing

FORMATS: tuple[str, ...] = (
    "latex",
    "markdown",
    "csv",
    "json",
    "statement",
    "statement-appendix",
    "statement-appendix-latex",
    "model-card",
)
PLOT_SUFFIXES: tuple[str, ...] = (".pdf", ".png", ".svg")


def latex_escape(text: object) -> str:
    """Escape ``text`` for LaTeX text mode (see :func:`greentrain.report.escape.latex_text`)."""
    return latex_text(text)


def markdown_escape(text: object) -> str:
    """Escape ``text`` for Markdown (see :func:`greentrain.report.escape.markdown_text`): it
    renders literally, never as HTML, links or cells."""
    return markdown_text(text)


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


def pm(mean: float | None, std: float | None, scale: float, decimals: int, latex: bool) -> str:
    """``mean ± std`` (each times ``scale``, ``decimals`` places); the mean alone without std."""
    if missing(mean):
        return "--" if latex else "n/a"
    if math.isinf(mean * scale):
        return _infinite(mean * scale, latex)
    m = f"{mean * scale:.{decimals}f}"
    if missing(std):
        return m
    s = f"{std * scale:.{decimals}f}"
    if math.isinf(std * scale):
        s = r"\infty" if latex else "inf"
    return rf"${m} \pm {s}$" if latex else f"{m} ± {s}"


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


def energy_unit(kwh: float | None) -> tuple[str, float]:
    """The unit to show ``kwh`` in and its factor from kWh: Wh below 0.1 kWh, MWh from
    1,000 kWh, else kWh."""
    v = 0.0 if missing(kwh) or math.isinf(float(kwh)) else abs(float(kwh))
    if v >= 1000:
        return "MWh", 1e-3
    if 0 < v < 0.1:
        return "Wh", 1e3
    return "kWh", 1.0


def fmt_energy_kwh(kwh: float | None, digits: int = 3) -> str:
    """Energy given in kWh, in a readable unit: ``56.2 Wh``, ``0.150 kWh``, ``12.0 MWh``."""
    if missing(kwh):
        return "n/a"
    unit, factor = energy_unit(kwh)
    return f"{readable(float(kwh) * factor, digits)} {unit}"


def co2_unit(grams: float | None) -> tuple[str, float]:
    """The unit to show ``grams`` of CO2e in and its factor from grams: g below 1 kg, t from
    1 t, else kg."""
    v = 0.0 if missing(grams) or math.isinf(float(grams)) else abs(float(grams))
    if v >= 1e6:
        return "t", 1e-6
    if v >= 1e3:
        return "kg", 1e-3
    return "g", 1.0


def fmt_co2_g(grams: float | None, digits: int = 3) -> str:
    """CO2e given in grams, in a readable unit: ``0.333 g``, ``576 g``, ``1.20 kg``, ``3.40 t``
    (the unit is followed by ``CO2e``)."""
    if missing(grams):
        return "n/a"
    unit, factor = co2_unit(grams)
    return f"{readable(float(grams) * factor, digits)} {unit} CO2e"


def fmt_duration_s(seconds: float | None, digits: int = 3) -> str:
    """A duration in a readable unit: ``42.0 seconds``, ``3.50 minutes``, ``12.3 hours``."""
    if missing(seconds):
        return "n/a"
    v = float(seconds)
    if abs(v) >= 3600:
        return f"{readable(v / 3600, digits)} hours"
    if abs(v) >= 60:
        return f"{readable(v / 60, digits)} minutes"
    return f"{readable(v, digits)} seconds"

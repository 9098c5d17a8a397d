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
from greentrain.report.unit_policy import (
    _infinite,
    energy_text,
    fmt_sig,
    mass_text,
    policy_for,
    readable,
)

__all__ = ["fmt_sig", "readable"]

PLOT_SUFFIXES: tuple[str, ...] = (".pdf", ".png", ".svg")


def latex_escape(text: object) -> str:
    """Escape ``text`` for LaTeX text mode (see :func:`greentrain.report.escape.latex_text`)."""
    return latex_text(text)


def markdown_escape(text: object) -> str:
    """Escape ``text`` for Markdown (see :func:`greentrain.report.escape.markdown_text`): it
    renders literally, never as HTML, links or cells."""
    return markdown_text(text)


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


def energy_unit(kwh: float | None) -> tuple[str, float]:
    """The unit to show ``kwh`` in and its factor from kWh
    (:func:`~greentrain.report.unit_policy.policy_for`)."""
    policy = policy_for([kwh])
    return policy.energy_unit, policy.energy_factor


def fmt_energy_kwh(kwh: float | None, digits: int = 3) -> str:
    """Energy given in kWh, in a readable unit: ``56.2 Wh``, ``150 Wh``, ``12.0 MWh``."""
    return energy_text(kwh)


def co2_unit(grams: float | None) -> tuple[str, float]:
    """The unit to show ``grams`` of CO2e in and its factor from grams."""
    policy = policy_for(co2_g=[grams])
    return policy.mass_unit, policy.mass_factor


def fmt_co2_g(grams: float | None, digits: int = 3) -> str:
    """CO2e given in grams, in a readable unit: ``333 mg CO2e``, ``576 g CO2e``, ``1.20 kg
    CO2e``."""
    return mass_text(grams)


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

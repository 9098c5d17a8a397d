"""Text for tables: numbers to significant digits, mean ± std, and the escapes of
:mod:`greentrain.report.escape` under their historical names.

Every text that came from a user (run names, model names, tags) goes through an escape before
it enters a table. Infinite figures (a sum that overflowed) print as ``inf``
(``$\\infty$`` in LaTeX); missing ones as ``n/a`` (``--``).
"""

from __future__ import annotations

import math

from greentrain.report.escape import latex_text, markdown_text
from greentrain.report.stats import missing

FORMATS: tuple[str, ...] = ("latex", "markdown", "csv", "json", "statement")
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

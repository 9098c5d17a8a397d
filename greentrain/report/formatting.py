"""Text for tables: escaping for LaTeX and Markdown, numbers to significant digits, mean ± std.

Every text that came from a user (run names, model names, tags) goes through an escape before
it enters a table.
"""

from __future__ import annotations

import math

from greentrain.report.stats import missing

FORMATS: tuple[str, ...] = ("latex", "markdown", "csv", "json", "statement")
PLOT_SUFFIXES: tuple[str, ...] = (".pdf", ".png", ".svg")

# LaTeX: every character that is special in text mode (plus < > | which print wrongly in OT1).
_LATEX_MAP = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "\n": " ",
    "\r": " ",
}


def latex_escape(text: object) -> str:
    """Escape ``text`` for LaTeX text mode (all of ``\\ { } $ & # ^ _ % ~ < > |``)."""
    return "".join(_LATEX_MAP.get(ch, ch) for ch in str(text))


_MD_PUNCT = set("\\`*_{}[]()#+-!|<>~^$&")


def markdown_escape(text: object) -> str:
    """Backslash-escape the ASCII punctuation that Markdown or HTML could interpret
    (``\\ ` * _ { } [ ] ( ) # + - ! | < > ~ ^ $ &``; CommonMark allows escaping any ASCII
    punctuation), so names render literally in Markdown tables, never as HTML, links or cells."""
    return "".join("\\" + ch if ch in _MD_PUNCT else ch for ch in str(text).replace("\n", " "))


def fmt_sig(value: float | None, digits: int = 3, latex: bool = False) -> str:
    """``value`` to ``digits`` significant digits; scientific notation outside 1e-3..1e6."""
    if missing(value):
        return "--" if latex else "n/a"
    v = float(value)
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
    m = f"{mean * scale:.{decimals}f}"
    if missing(std):
        return m
    s = f"{std * scale:.{decimals}f}"
    return rf"${m} \pm {s}$" if latex else f"{m} ± {s}"

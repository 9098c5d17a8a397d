"""Run records -> LaTeX / Markdown / CSV / JSON tables and a carbon statement for a paper.

All formats are built from :mod:`greentrain.analysis` (configurations pooled over seeds, finished
runs only; the study totals and the statement include failed and interrupted runs). Every text
that came from a user (run names, model names, tags) is escaped for the target format.

Entry point: :func:`render(runs, fmt) <render>` with ``fmt`` in :data:`FORMATS`.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd

from greentrain import analysis
from greentrain.errors import ConfigError

FORMATS: tuple[str, ...] = ("latex", "markdown", "csv", "json", "statement")

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

# Assumed relative uncertainty of each measurement method (stated assumptions, see statement()).
METHOD_UNCERTAINTY: dict[str, str] = {
    "counter": (
        "GPU energy counter read through NVML: NVIDIA documents power readings as accurate to "
        "within +/-5% only for Fermi and Kepler GPUs and documents no figure for newer ones; we "
        "assume +/-5% (stated assumption)"
    ),
    "sampled": (
        "power sampled through NVML and integrated over time: we assume +/-10%, the sensor's "
        "error plus the integration error of the sampling interval (stated assumption)"
    ),
    "zeus": "Zeus (NVML energy counter or sampled power): we assume +/-5% (stated assumption)",
    "rapl": (
        "Intel/AMD RAPL energy counters: the vendors document no accuracy figure; we assume "
        "+/-10% (stated assumption)"
    ),
    "codecarbon": (
        "CodeCarbon (offline mode; its own sensors or TDP-based model): we assume +/-20% "
        "(stated assumption)"
    ),
    "estimated": (
        "estimated from a power model (CPU time x per-core share of TDP, memory x W/GB, after "
        "Green Algorithms' conventions), not measured: correct to an order of magnitude only "
        "(stated assumption)"
    ),
    "fake": "a fake meter used in tests: not a measurement",
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


# --------------------------------------------------------------------------------------------
# Number formatting (kWh and kg at the edges)
# --------------------------------------------------------------------------------------------


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_sig(value: float | None, digits: int = 3, latex: bool = False) -> str:
    """``value`` to ``digits`` significant digits; scientific notation outside 1e-3..1e6."""
    if _missing(value):
        return "--" if latex else "n/a"
    v = float(value)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e6:
        decimals = max(digits - 1 - math.floor(math.log10(abs(v))), 0)
        return f"{v:.{decimals}f}"
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    return rf"${mant}\times10^{{{int(exp)}}}$" if latex else f"{mant}e{int(exp)}"


def _pm(mean: float | None, std: float | None, scale: float, decimals: int, latex: bool) -> str:
    if _missing(mean):
        return "--" if latex else "n/a"
    m = f"{mean * scale:.{decimals}f}"
    if _missing(std):
        return m
    s = f"{std * scale:.{decimals}f}"
    return rf"${m} \pm {s}$" if latex else f"{m} ± {s}"


# --------------------------------------------------------------------------------------------
# The table (one row per configuration)
# --------------------------------------------------------------------------------------------

TABLE_HEADERS = (
    "Configuration",
    "n",
    "Accuracy (%)",
    "Energy (kWh)",
    "kgCO2e",
    "Backward GFLOPs/iter",
    "Accuracy/kWh",
)


def table_rows(groups: pd.DataFrame, latex: bool = False) -> list[list[str]]:
    """Formatted cells of the paper table; configuration names are *not* escaped here."""
    rows = []
    for _, g in groups.iterrows():
        if not _missing(g["accuracy_mean"]):
            quality = _pm(g["accuracy_mean"], g["accuracy_std"], 100.0, 1, latex)
        elif not _missing(g["fid_mean"]):
            quality = "FID " + _pm(g["fid_mean"], g["fid_std"], 1.0, 1, latex)
        else:
            quality = "--" if latex else "n/a"
        mark = "*" if g["estimated"] else ""
        co2_kg = None if _missing(g["co2_g_mean"]) else g["co2_g_mean"] / 1000.0
        gflops = None if _missing(g["backward_flops_mean"]) else g["backward_flops_mean"] / 1e9
        rows.append(
            [
                str(g["configuration"]),
                str(int(g["n_runs"])),
                quality,
                fmt_sig(g["energy_kwh_mean"], latex=latex) + mark,
                fmt_sig(co2_kg, latex=latex) + mark,
                fmt_sig(gflops, latex=latex),
                fmt_sig(g["acc_per_kwh_mean"], latex=latex) + mark,
            ]
        )
    return rows


def _notes(groups: pd.DataFrame) -> list[str]:
    notes = [
        "Mean over seeds of finished runs; ± is the sample standard deviation (none for n=1). "
        "Accuracy is the final-epoch top-1 test accuracy. Energy, CO2e and accuracy per kWh "
        "are means of per-run figures."
    ]
    if not groups.empty and groups["estimated"].any():
        notes.append("* energy estimated, not measured, for at least one run.")
    return notes


def to_latex(runs: Iterable[dict]) -> str:
    """A booktabs ``tabular`` ready to ``\\input`` (needs ``\\usepackage{booktabs}``)."""
    groups = analysis.group_runs(list(runs))
    headers = [
        "Configuration",
        "$n$",
        r"Accuracy (\%)",
        "Energy (kWh)",
        r"kg\,CO$_2$e",
        "Bwd GFLOPs/iter",
        "Acc./kWh",
    ]
    lines = [
        "% Generated by greentrain export --format latex; needs \\usepackage{booktabs}.",
        r"\begin{tabular}{lrrrrrr}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for row in table_rows(groups, latex=True):
        cells = [latex_escape(row[0])] + [c.replace("*", r"$^{*}$") for c in row[1:]]
        lines.append(" & ".join(cells) + r" \\")
    if groups.empty:
        lines.append(r"\multicolumn{7}{l}{No finished runs selected.} \\")
    lines.append(r"\bottomrule")
    for note in _notes(groups):
        note = latex_escape(note).replace("±", r"$\pm$").replace("CO2e", r"CO$_2$e")
        note = note.replace("*", r"$^{*}$", 1) if note.startswith("*") else note
        lines.append(r"\multicolumn{7}{l}{\footnotesize " + note + r"} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def to_markdown(runs: Iterable[dict]) -> str:
    """A GitHub-flavoured Markdown table of the configurations, with the study totals."""
    runs = list(runs)
    groups = analysis.group_runs(runs)
    lines = [
        "| " + " | ".join(TABLE_HEADERS) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(TABLE_HEADERS) - 1)) + "|",
    ]
    for row in table_rows(groups):
        cells = [markdown_escape(row[0])] + [c.replace("*", r"\*") for c in row[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    if groups.empty:
        lines.append("| No finished runs selected. |" + " |" * (len(TABLE_HEADERS) - 1))
    lines.append("")
    lines += [("\\" + n) if n.startswith("*") else n for n in _notes(groups)]
    totals = analysis.study_totals(runs)
    if not totals.empty:
        lines += [
            "",
            "| Status | Runs | Energy (kWh) | kgCO2e | Hours |",
            "|:---|---:|---:|---:|---:|",
        ]
        for status, t in totals.iterrows():
            lines.append(
                f"| {markdown_escape(status)} | {int(t['runs'])} | {fmt_sig(t['energy_kwh'])} | "
                f"{fmt_sig(t['co2_g'] / 1000.0)} | {fmt_sig(t['duration_s'] / 3600.0)} |"
            )
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    ["configuration", "model", "dataset", "schedule", "drop_rate", "n_runs", "estimated"]
    + [f"{q}_{s}" for q in analysis.QUANTITIES for s in ("mean", "std", "ci95", "n")]
    + ["ci_note"]
)


def to_csv(runs: Iterable[dict]) -> str:
    """One row per configuration with every pooled statistic (SI units; energy in kWh)."""
    groups = analysis.group_runs(list(runs))
    buf = io.StringIO()
    groups.reindex(columns=CSV_COLUMNS).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_jsonable(r) for r in frame.astype(object).to_dict(orient="records")]


def to_json(runs: Iterable[dict]) -> str:
    """``{"format", "configurations", "runs", "pareto_front", "savings_vs_dense", "totals"}``
    with sorted keys; NaN becomes ``null``."""
    runs = list(runs)
    groups = analysis.group_runs(runs)
    doc = {
        "format": "greentrain.export/1",
        "configurations": _records(groups),
        "runs": _records(analysis.runs_frame(runs)),
        "pareto_front": list(analysis.pareto_front(groups)["configuration"]),
        "savings_vs_dense": _records(analysis.savings_vs_dense(groups)),
        "totals": {
            k: _jsonable(v) for k, v in analysis.study_totals(runs).to_dict("index").items()
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------------------------
# The statement for a paper's compute / carbon section
# --------------------------------------------------------------------------------------------


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _hardware(runs: list[dict]) -> str:
    setups: Counter = Counter()
    for r in runs:
        env = r.get("env") or {}
        gpus = Counter(env.get("gpu_models") or [])
        gdesc = " + ".join(f"{n}x {m}" for m, n in sorted(gpus.items())) or "no GPU"
        cpu = env.get("cpu_model") or "of unrecorded model"
        setups[f"{gdesc}, CPU {cpu}"] += 1
    return _join([f"{s} ({n} runs)" for s, n in sorted(setups.items())]) or "not recorded"


def _method_of(source: str) -> str:
    return source.split(":", 1)[1] if ":" in source else source


def statement(runs: Iterable[dict]) -> str:
    """A paragraph for a paper: hardware, total energy (failed runs included), carbon intensity
    (source, year), PUE, which meters measured what, which numbers are estimates, and each
    method's uncertainty, labelled as stated assumptions where no vendor figure exists."""
    runs = list(runs)
    if not runs:
        return "No runs were selected, so there is no energy to report.\n"
    totals = analysis.study_totals(runs)
    allt = totals.loc["all"]
    by_status = ", ".join(
        f"{int(t['runs'])} {status} ({fmt_sig(t['energy_kwh'])} kWh)"
        for status, t in totals.iterrows()
        if status != "all"
    )
    wasted = sum(
        float(totals.loc[s, "energy_kwh"]) for s in ("failed", "interrupted") if s in totals.index
    )
    out = [
        f"Experiments ran on the following hardware: {_hardware(runs)}.",
        f"The study comprised {int(allt['runs'])} runs ({by_status}) that used "
        f"{fmt_sig(allt['energy_kwh'])} kWh in total, failed and interrupted runs included "
        f"({fmt_sig(wasted)} kWh of it in runs that did not finish), and emitted "
        f"{fmt_sig(allt['co2_g'] / 1000.0)} kg CO2e over {fmt_sig(allt['duration_s'] / 3600.0)} "
        "hours of run time.",
    ]
    if allt["unmeasured_runs"]:
        out.append(
            f"{int(allt['unmeasured_runs'])} runs have no energy figure (no meter was available)"
            " and are not included in these totals, which are therefore lower bounds."
        )
    carbon = Counter()
    for r in runs:
        c = r.get("carbon") or {}
        if c.get("intensity_g_per_kwh") is not None:
            year = c.get("year")
            place = " ".join(str(x) for x in (c.get("country"), c.get("region")) if x)
            carbon[
                (
                    float(c["intensity_g_per_kwh"]),
                    str(c.get("source") or "unknown source"),
                    "year not recorded" if year is None else str(year),
                    float(c.get("pue") or 1.0),
                    place,
                )
            ] += 1
    if carbon:
        descs = [
            f"{i:g} gCO2e/kWh ({src}, {year}{', ' + place if place else ''}) with a PUE of {pue:g}"
            f" ({n} runs)"
            for (i, src, year, pue, place), n in sorted(carbon.items())
        ]
        out.append(
            "Emissions were computed from the metered energy with a carbon intensity of "
            + _join(descs)
            + "; these are average intensities, and the marginal intensity at the time of the "
            "runs may differ substantially."
        )
    else:
        out.append("No carbon intensity was recorded, so no emissions are stated.")
    measured: dict[tuple[str, str], int] = Counter()
    unavailable: dict[tuple[str, str], int] = Counter()
    methods: set[str] = set()
    n_est = 0
    for r in runs:
        if analysis.is_estimated(r):
            n_est += 1
        for domain, dom in (r.get("energy") or {}).items():
            if not isinstance(dom, dict):
                continue
            if dom.get("energy_j") is None:
                unavailable[(domain, str(dom.get("reason") or "no reason recorded"))] += 1
            else:
                src = str(dom.get("source") or "unknown")
                measured[(domain, src)] += 1
                methods.add(_method_of(src))
    if measured:
        out.append(
            "Energy was metered per domain as follows: "
            + _join(
                [f"{d.upper()} by {src} in {n} runs" for (d, src), n in sorted(measured.items())]
            )
            + "."
        )
    if unavailable:
        out.append(
            "Not measured: "
            + _join(
                [f"{d.upper()} in {n} runs ({why})" for (d, why), n in sorted(unavailable.items())]
            )
            + "; those domains are missing from the totals, not counted as zero."
        )
    if n_est:
        out.append(
            f"The energy of {n_est} of {len(runs)} runs includes estimated (not measured) figures;"
            " they are marked in every table."
        )
    else:
        out.append("No figure in these totals is an estimate.")
    unc = [METHOD_UNCERTAINTY[m] for m in sorted(methods) if m in METHOD_UNCERTAINTY]
    unknown = sorted(m for m in methods if m not in METHOD_UNCERTAINTY)
    if unc:
        out.append("Measurement uncertainty by method: " + "; ".join(unc) + ".")
    if unknown:
        out.append(f"No uncertainty is known for the method(s) {_join(unknown)}.")
    return " ".join(out) + "\n"


def render(runs: Iterable[dict], fmt: str) -> str:
    """The export of ``runs`` in format ``fmt`` (one of :data:`FORMATS`) as text."""
    funcs = {
        "latex": to_latex,
        "markdown": to_markdown,
        "csv": to_csv,
        "json": to_json,
        "statement": statement,
    }
    if fmt not in funcs:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return funcs[fmt](list(runs))

"""Run records -> the comparison as Markdown, CSV and JSON (LaTeX: :mod:`greentrain.report.
latex_table`); the entry point of every export format is :func:`greentrain.report.tables.render`.

Tables pool the finished runs of each configuration over seeds (:mod:`greentrain.report.grouping`);
the study totals and the statement include failed and interrupted runs.

Every text from a run goes through :mod:`greentrain.report.escape` for its target. Values that
could not be read (:mod:`greentrain.report.reading`) are left out, never counted as 0: LaTeX
and Markdown mark the configurations they affect with a dagger and list them under the tables
(at most :data:`~greentrain.report.reading.MAX_LISTED`, then how many more), CSV has an
``issues`` column, JSON an ``issues`` list in each configuration and run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict

import pandas as pd

from greentrain.record.jsonable import to_jsonable
from greentrain.report import latex_table
from greentrain.report.comparison import compare
from greentrain.report.escape import as_str, csv_cell
from greentrain.report.formatting import markdown_escape
from greentrain.report.grouping import QUANTITIES, runs_frame
from greentrain.report.reading import ISSUES_HEADING, Issue, issue_lines
from greentrain.report.study import pareto_front, savings_vs_dense, study_totals
from greentrain.report.unit_policy import policy_for, readable


def to_latex(
    runs: Iterable[dict], group_by: Sequence[str] | None = None, metric: str | None = None
) -> str:
    """The LaTeX table (:func:`greentrain.report.latex_table.to_latex`)."""
    return latex_table.to_latex(list(runs), group_by, metric)


def to_markdown(
    runs: Iterable[dict], group_by: Sequence[str] | None = None, metric: str | None = None
) -> str:
    """A GitHub-flavoured Markdown comparison (:mod:`greentrain.report.comparison`): the answer
    sentence, the table with n and 95% intervals, its notes, and the study totals."""
    runs = list(runs)
    c = compare(runs, group_by, metric)
    headers = c.headers()
    lines = [
        "**" + markdown_escape(c.answer.sentence()) + "**",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    for row in c.rows:
        cells = [markdown_escape(cell) for cell in c.cells(row)]
        cells[0] += ("≈" if row.modelled else "") + ("†" if row.flagged else "")
        lines.append("| " + " | ".join(cells) + " |")
    if not c.rows:
        lines.append("| No finished runs selected. |" + " |" * (len(headers) - 1))
    notes = []
    if c.grouped_by:
        keys = ", ".join(markdown_escape(k) for k in c.grouped_by)
        notes.append(f"Configurations differ in: {keys}.")
    notes += [c.notes[0]] + [markdown_escape(n) for n in c.notes[1:]]
    notes.append(markdown_escape("Energy: " + c.energy_note + "."))
    if any(r.modelled for r in c.rows):
        notes.append("≈ energy partly or wholly modelled, not measured (see Measured energy).")
    for note in notes:
        lines += ["", note]
    totals = study_totals(runs)
    if not totals.empty:
        policy = policy_for(totals["energy_kwh"], totals["co2_g"])
        lines += [
            "",
            f"| Status | Runs | Energy ({policy.energy_unit}) | CO2e ({policy.mass_unit}) "
            "| Hours |",
            "|:---|---:|---:|---:|---:|",
        ]
        for status, t in totals.iterrows():
            lines.append(
                f"| {markdown_escape(status)} | {int(t['runs'])} | "
                f"{policy.energy(t['energy_kwh'])} | {policy.mass(t['co2_g'])} | "
                f"{readable(t['duration_s'] / 3600.0)} |"
            )
        nested = int(totals.loc["all", "nested_runs"])
        if nested:
            lines += ["", f"{nested} nested run(s) are counted once, inside the run they ran in."]
    issues = issue_lines([i for issues in runs_frame(runs)["issues"] for i in issues])
    if issues:
        lines += ["", ISSUES_HEADING, ""] + ["- " + markdown_escape(i) for i in issues]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    ["configuration", "model", "dataset", "schedule", "drop_rate", "settings", "n_runs"]
    + ["estimated"]
    + [f"{q}_{s}" for q in QUANTITIES for s in ("mean", "std", "ci95", "n")]
    + ["vs_dense", "vs_dense_low", "vs_dense_high", "vs_dense_method", "measured_share"]
    + ["ci_note", "issues"]
)


def to_csv(
    runs: Iterable[dict], group_by: Sequence[str] | None = None, metric: str | None = None
) -> str:
    """One row per configuration with every pooled statistic (SI units; energy in kWh); the
    ``issues`` column lists the values of its runs that were left out ("; "-separated).
    Text cells are made safe for spreadsheets (:func:`~greentrain.report.escape.csv_cell`)."""
    runs = list(runs)
    c = compare(runs, group_by, metric)
    groups = c.groups.copy()
    rs = [row.ratio for row in c.rows]
    groups["vs_dense"] = [None if r is None else r.estimate for r in rs]
    groups["vs_dense_low"] = [None if r is None else r.low for r in rs]
    groups["vs_dense_high"] = [None if r is None else r.high for r in rs]
    groups["vs_dense_method"] = [None if r is None else r.method for r in rs]
    groups["measured_share"] = [
        None if row.measured == "n/a" else float(row.measured.rstrip("%")) / 100 for row in c.rows
    ]
    groups = groups.reindex(columns=CSV_COLUMNS)
    groups["issues"] = [
        "; ".join(i.text() for i in issues) if isinstance(issues, list) else ""
        for issues in groups["issues"]
    ]
    for col in groups.columns:
        if not pd.api.types.is_numeric_dtype(groups[col]):  # numbers stay numbers
            groups[col] = groups[col].map(csv_cell)
    buf = io.StringIO()
    groups.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


_MAX_INT_BITS = 10_000  # Python refuses to print integers of more than 4300 digits


def _json_ready(value: object) -> object:
    """:func:`~greentrain.record.jsonable.to_jsonable`, issues as dicts, and integers too long
    to print as text."""
    if isinstance(value, Issue):
        return value.as_dict()
    if isinstance(value, int) and not isinstance(value, bool):
        return as_str(value) if value.bit_length() > _MAX_INT_BITS else value
    if isinstance(value, dict):
        return {as_str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return to_jsonable(value)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_json_ready(r) for r in frame.astype(object).to_dict(orient="records")]


def to_json(
    runs: Iterable[dict], group_by: Sequence[str] | None = None, metric: str | None = None
) -> str:
    """``{"format", "configurations", "runs", "pareto_front", "savings_vs_dense", "totals"}``
    with sorted keys; NaN and infinities become ``null``. Each configuration and run has an
    ``issues`` list: ``{"run", "field", "value", "action", "reason", "count"}`` per value left
    out or shown as text."""
    runs = list(runs)
    c = compare(runs, group_by, metric)
    groups = c.groups
    ratios = {row.configuration: row.ratio for row in c.rows}
    doc = {
        "format": "greentrain.export/1",
        "answer": c.answer.sentence(),
        "grouped_by": c.grouped_by,
        "pooled_over": c.pooled_over,
        "units": {"energy": c.policy.energy_unit, "co2": c.policy.mass_unit},
        "vs_dense": {k: None if r is None else _json_ready(asdict(r)) for k, r in ratios.items()},
        "configurations": _records(groups),
        "runs": _records(runs_frame(runs, group_by, metric)),
        "pareto_front": list(pareto_front(groups)["configuration"]),
        "savings_vs_dense": _records(savings_vs_dense(groups)),
        "totals": _json_ready(study_totals(runs).to_dict("index")),
    }
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"

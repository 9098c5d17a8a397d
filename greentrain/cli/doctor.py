"""``greentrain doctor [--json] [--process-tree]``: which meters can measure here, why not,
and how to fix it; and how ``greentrain run`` keeps the job's process tree whole.

Every registered meter is probed (none is started). The ``fake`` meter is listed last as
available but marked "for tests and dry runs only": ``greentrain run`` never uses it unless
``--meter fake`` is given. ``--json`` prints a list of ``{meter, available, reason, fix,
devices}`` objects (``note`` added for ``fake``).

The text output ends with the process tree: whether the wrapper can be a child subreaper
(a job's daemons that ``setsid`` and double-fork stay its descendants) and whether the job can
run in a cgroup v2 of its own (its CPU time and its clean-up cover every process), each with
the reason. ``--process-tree`` prints only that part (``--json``: ``{subreaper: {available,
reason}, cgroup: {available, reason, fix, where}}``).
"""

from __future__ import annotations

import json

import typer

from greentrain.cli._app import app
from greentrain.meters import METERS, probe_all
from greentrain.run.jobcgroup import probe as cgroup_probe
from greentrain.run.process import subreaper_support

FAKE_NOTE = "for tests and dry runs only; used only with --meter fake"


def doctor_report(country: str | None = None) -> list[dict]:
    """Probe every meter; one dict per meter (the ``--json`` shape)."""
    opts = {"codecarbon": {"country_iso_code": country}} if country else {}
    rows = []
    for probe in probe_all(list(METERS), **opts):
        row = probe.to_dict()
        if probe.meter == "fake":
            row["note"] = FAKE_NOTE
        rows.append(row)
    return rows


def format_report(rows: list[dict]) -> str:
    """Human-readable lines: ``meter  available|unavailable  devices / reason + fix``."""
    lines = []
    width = max(len(r["meter"]) for r in rows)
    for r in rows:
        head = f"{r['meter']:<{width}}  "
        if r["available"]:
            lines.append(head + "available" + (f"  ({r['note']})" if r.get("note") else ""))
            for dev in r["devices"]:
                lines.append(" " * (width + 2) + f"- {dev}")
        else:
            lines.append(head + f"unavailable: {r['reason']}")
            if r["fix"]:
                lines.append(" " * (width + 2) + f"fix: {r['fix']}")
    return "\n".join(lines)


def process_tree_report() -> dict:
    """Subreaper and cgroup support here (the ``--process-tree --json`` shape)."""
    subreaper, why = subreaper_support()
    cgroup = cgroup_probe()
    return {
        "subreaper": {"available": subreaper, "reason": why},
        "cgroup": {"available": cgroup.available, "reason": cgroup.reason, "fix": cgroup.fix,
                   "where": cgroup.where},
    }  # fmt: skip


def format_process_tree(tree: dict) -> str:
    """``subreaper  yes|no: reason`` and ``cgroup  yes|no: reason`` (+ fix) lines."""
    lines = ["process tree"]
    for name in ("subreaper", "cgroup"):
        row = tree[name]
        lines.append(f"  {name:<10} {'yes' if row['available'] else 'no'}: {row['reason']}")
        if not row["available"] and row.get("fix"):
            lines.append(f"  {'':<10} fix: {row['fix']}")
    return "\n".join(lines)


@app.command("doctor")
def doctor_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of meter probes."),
    country: str = typer.Option(
        None, "--country", help="ISO-3166 alpha-3 code to check CodeCarbon with (default USA)."
    ),
    process_tree: bool = typer.Option(
        False, "--process-tree", help="Only the subreaper and cgroup checks of `greentrain run`."
    ),
) -> int:
    """Show every energy meter (available or not, the reason, the fix, the devices) and how
    `greentrain run` keeps the job's processes together (subreaper, cgroup)."""
    if process_tree:
        tree = process_tree_report()
        print(json.dumps(tree, indent=2) if as_json else format_process_tree(tree))
        return 0
    rows = doctor_report(country)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_report(rows))
        print(format_process_tree(process_tree_report()))
    return 0

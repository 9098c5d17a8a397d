"""``greentrain doctor [--json]``: which meters can measure here, why not, and how to fix it.

Every registered meter is probed (none is started). The ``fake`` meter is listed last as
available but marked "for tests and dry runs only": ``greentrain run`` never uses it unless
``--meter fake`` is given. ``--json`` prints a list of ``{meter, available, reason, fix,
devices}`` objects (``note`` added for ``fake``).
"""

from __future__ import annotations

import json

import typer

from greentrain.cli._app import app
from greentrain.meters import METERS, probe_all

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


@app.command("doctor")
def doctor_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of meter probes."),
    country: str = typer.Option(
        None, "--country", help="ISO-3166 alpha-3 code to check CodeCarbon with (default USA)."
    ),
) -> int:
    """Show every energy meter: available or not, the reason, the fix, the devices."""
    rows = doctor_report(country)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_report(rows))
    return 0

"""The end-of-run summary printed on stderr: duration, energy per domain with its source, the
total in kWh and its CO2e with the factors used, which figures are estimates, and whether the
live forecast had a prior from sibling runs (or why not, unless the store simply held none)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from greentrain.run.forecasting import NO_SIBLINGS, siblings_text
from greentrain.units import format_energy


def print_summary(record: Mapping[str, Any], file: TextIO | None = None) -> None:
    """A compact summary of a finished record (the run object) on ``file`` (default stderr)."""
    console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
    dur = record.get("duration_s")
    console.print(
        f"[bold]greentrain[/] run {record['id']} [bold]{record['status']}[/] "
        f"(exit {record.get('exit_code')}) in {dur:.1f} s"
        if dur is not None
        else f"[bold]greentrain[/] run {record['id']} {record['status']}"
    )
    estimated = []
    for domain, e in record.get("energy", {}).items():
        if e.get("energy_j") is None:
            reason = escape(e.get("reason", "not measured"))
            console.print(f"  {domain:<5} n/a  ({reason})")
            continue
        mark = " [yellow](estimate)[/]" if e.get("estimated") else ""
        if e.get("estimated"):
            estimated.append(domain)
        console.print(
            f"  {domain:<5} {format_energy(e['energy_j']):>10}  {escape(e['source'])}{mark}"
        )
    kwh, co2 = record.get("energy_kwh"), record.get("co2_g")
    line = f"  total {format_energy(record.get('energy_j')):>10}"
    if kwh is not None:
        line += f" = {kwh:.3g} kWh"
    carbon = record.get("carbon") or {}
    if co2 is not None:
        line += (
            f", {co2:.3g} gCO2e ({carbon.get('intensity_g_per_kwh')} g/kWh, "
            f"{carbon.get('source')}, PUE {carbon.get('pue')})"
        )
    else:
        line += ", gCO2e n/a (no carbon intensity; pass --country or --carbon-intensity)"
    console.print(line, markup=False)
    if record.get("net_energy_j") is not None:
        console.print(f"  net of idle baseline: {format_energy(record['net_energy_j'])}")
    if estimated:
        console.print(f"  [yellow]estimates[/]: {', '.join(estimated)} (no direct sensor)")
    prior = forecast_prior_text(record)
    if prior is not None:
        console.print(f"  forecast: {prior}", markup=False)
    if record.get("from_journal"):
        where = record["from_journal"]
        console.print(f"  (read from its journal {where}: the store has not taken the run yet;"
                      " `greentrain store sync` lands it)", markup=False)  # fmt: skip


def forecast_prior_text(record: Mapping[str, Any]) -> str | None:
    """What the run's live forecasts had of sibling runs, in words, from its latest ``forecast``
    event (``prior from 3 sibling runs``, or ``no sibling prior: <why>``); None without a
    forecast, or when the store simply held no sibling run (a first run's: no news)."""
    events = record.get("events") if isinstance(record.get("events"), list) else []
    made = [e for e in events if isinstance(e, Mapping) and e.get("event") == "forecast"]
    if not made:
        return None
    siblings, note = made[-1].get("siblings"), made[-1].get("siblings_note")
    if isinstance(siblings, int) and not isinstance(siblings, bool) and siblings > 0:
        return siblings_text(siblings)
    if note == NO_SIBLINGS:
        return None
    return f"no sibling prior: {note}" if isinstance(note, str) and note else "no sibling prior"

"""``greentrain show RUN``: one run or group in detail.

A group's ``show`` adds a table of its nodes (host, rank, status, the devices each metered, its
energy, and what was counted elsewhere). Every text from the record goes to the terminal through
:func:`greentrain.report.escape.terminal_text` (control characters, escape sequences and line
breaks shown escaped, never raw; rich markup and emoji codes never interpreted), a value of the
wrong type is shown as its ``repr`` marked ``(invalid)``, and ``--json`` is always valid JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer
from rich.text import Text

from greentrain.cli._app import app
from greentrain.cli.cells import as_list, as_map, console, energy, fmt, invalid, print_json
from greentrain.cli.lookup import STORE_HELP, open_to_read, resolve_run
from greentrain.record.group_size import nodes_text
from greentrain.record.jsonable import dumps
from greentrain.report.escape import terminal_text
from greentrain.report.reading import check_number
from greentrain.report.runs import parse_time
from greentrain.units import iso_utc


@app.command("show")
def show_cmd(
    run: str = typer.Argument(..., help="Run id, unique id prefix, or unique run name."),
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run object as JSON."),
) -> None:
    """Show one run: energy per domain with sources, windows, metrics, factors."""
    with open_to_read(store) as st:
        r = st.get_run(resolve_run(st, run))
    if as_json:
        print_json(r)
        return
    lines: list[Text] = []  # printed at once: one print per line cost a 64-node group ~1 s

    def say(text: str) -> None:  # every line of user data: escaped, plain text
        lines.append(Text(terminal_text(text)))

    def heading(text: str) -> None:
        lines.append(Text(text, style="bold"))

    head = Text()
    head.append(terminal_text(r.get("id")), style="bold")
    head.append(f"  {terminal_text(r.get('name'))}  ")
    head.append(terminal_text(r.get("status")), style="bold")
    head.append(f"  exit {terminal_text(r.get('exit_code'))}")
    lines.append(head)
    if r.get("parent"):
        say(f"  nested in {r['parent']} (its energy is inside that run's figures; counted once)")
    children = as_list(r.get("children"))
    if children:
        say(f"  nested runs {' '.join(map(str, children))} (inside this run's figures)")
    for cell in map(as_map, as_list(r.get("unreadable"))):
        say(f"  unreadable {cell.get('field')} = {cell.get('value')} (left out of the figures)")
    command = r.get("command")
    say(f"  command   {' '.join(map(str, command)) if isinstance(command, list) else command}")
    git = as_map(r.get("git"))
    say(f"  cwd       {r.get('cwd')}   git {git.get('commit')} dirty={git.get('dirty')}")
    say(
        f"  started   {r.get('started_at')}  ended {r.get('ended_at')}  "
        f"({fmt(r.get('duration_s'), '.2f')} s)"
    )
    env = as_map(r.get("env"))
    say(
        f"  host      {env.get('host')}  cpu {env.get('cpu_model')}  gpus {env.get('gpu_models')}"
        f"  torch {env.get('torch_version')}  cuda {env.get('cuda_version')}"
    )
    tags = as_map(r.get("tags"))
    if tags:
        say("  tags      " + " ".join(f"{k}={v}" for k, v in tags.items()))
    if r.get("config"):
        say("  config    " + dumps(r["config"]))
    heading("energy")
    for domain, e in as_map(r.get("energy")).items():
        if not isinstance(e, Mapping):
            say(f"  {domain:<5} {invalid(e)}")
            continue
        if e.get("energy_j") is None:
            say(f"  {domain:<5} n/a  {e.get('reason', '')}")
            continue
        est = " (estimate)" if e.get("estimated") else ""
        say(f"  {domain:<5} {energy(e['energy_j']):>10}  {e.get('source')}{est}")
        for a in as_list(e.get("alternatives")):
            a = as_map(a)
            pct = a.get("disagreement_pct")
            pct_s = "" if pct is None else f" ({fmt(pct, '+.1f')}%)"
            ev = f" [{a.get('scope')}, evidence]" if a.get("evidence") else ""
            say(
                f"        alt {energy(a.get('energy_j')):>10}  "
                f"{a.get('meter')}:{a.get('method')}{ev}{pct_s}"
            )
    carbon = as_map(r.get("carbon"))
    say(
        f"  total {energy(r.get('energy_j'))} = {fmt(r.get('energy_kwh'), '.4g')} kWh, "
        f"{fmt(r.get('co2_g'), '.4g')} gCO2e  [{carbon.get('intensity_g_per_kwh')} g/kWh "
        f"{carbon.get('source')} year {carbon.get('year')}, PUE {carbon.get('pue')}]"
    )
    if r.get("totals_note"):
        say(f"  incomplete: {r['totals_note']}")
    for a in map(as_map, as_list(r.get("energy_alternatives"))):  # SLURM's, other meters'
        pct = a.get("disagreement_pct")
        pct_s = "" if pct is None else f" ({fmt(pct, '+.1f')}%)"
        if a.get("evidence"):
            _say_evidence(say, a, pct_s)
            continue
        line = f"{a.get('meter')}:{a.get('method')} of {a.get('job')} [{a.get('state')}]{pct_s}"
        say(f"  vs    {energy(a.get('energy_j'))}  {line}  {a.get('reason') or ''}".rstrip())
    baseline = as_map(r.get("baseline"))
    if baseline:
        say(
            f"  baseline {fmt(baseline.get('duration_s'), '.1f')} s, idle power_w "
            f"{baseline.get('power_w')}; net {energy(r.get('net_energy_j'))}"
        )
    heading("meters")
    for m in map(as_map, as_list(r.get("meters"))):
        state = f"error: {m['error']}" if m.get("error") else ("ok" if m.get("available") else None)
        fix = f"  (fix: {m['fix']})" if m.get("fix") and not m.get("available") else ""
        say(f"  {str(m.get('meter')):<10} {state if state else m.get('reason')}{fix}")
    windows = as_list(r.get("windows"))
    if windows:
        heading(f"windows ({len(windows)}; the metrics logged in each below it)")
        t0 = parse_time(r.get("started_at"))
        logged = [as_map(m) for m in as_list(r.get("metrics"))]
        for w in map(as_map, windows[:50]):
            parts = [
                f"{d} {energy(as_map(v).get('energy_j'))}"
                for d, v in as_map(w.get("energy")).items()
                if v
            ]
            number = as_map(w.get("info")).get("index", w.get("index"))  # epochs from 1
            say(
                f"  {str(number):>3} {str(w.get('name')):<10} "
                f"{fmt(w.get('duration_s'), '.2f')} s  " + ", ".join(parts)
            )
            for m in _logged_in(w, logged, t0):
                say("        " + dumps({k: v for k, v in m.items() if k != "time_s"}))
    metrics = as_list(r.get("metrics"))
    if metrics:
        heading(f"metrics ({len(metrics)} entries; last shown)")
        say("  " + dumps(metrics[-1]))
    events = as_list(r.get("events"))
    if events:
        heading(f"events ({len(events)})")
        for e in map(as_map, events[-50:]):
            t = check_number(e.get("t"))[0]
            when = "?" if t is None else iso_utc(t)
            rest = {k: v for k, v in e.items() if k not in ("t", "event")}
            say(f"  {when}  {e.get('event')}  " + (dumps(rest) if rest else ""))
    _show_nodes(r, say, heading)
    console().print(Text("\n").join(lines))


def _logged_in(w: Mapping[str, Any], logged: list[dict], t0: Any) -> list[dict]:
    """The metrics entries logged inside window ``w`` (same name, time within its span)."""
    start, end = parse_time(w.get("started_at")), parse_time(w.get("ended_at"))
    if t0 is None or start is None or end is None:
        return []
    # the stored times are cut to milliseconds: an entry logged in a window's last millisecond
    lo, hi = (start - t0).total_seconds() - 1e-3, (end - t0).total_seconds() + 1e-3
    out = []
    for m in logged:
        t = check_number(m.get("time_s"))[0]
        if m.get("window") == w.get("name") and t is not None and lo <= t <= hi:
            out.append(m)
    return out


def _show_nodes(r: Mapping[str, Any], say: Any, heading: Any) -> None:
    """A group's nodes: one line each, then what each left to another wrapper."""
    nodes = [as_map(n) for n in as_list(r.get("nodes"))]
    if not nodes:
        if r.get("group") is not None:
            say(f"  part of group {r['group']} (greentrain show {r['group']} for the whole run)")
        return
    size = as_map(r.get("size"))
    count = nodes_text(size) if size.get("expected") is not None else str(len(nodes))
    launch = f"; launch {terminal_text(r.get('launch'))}" if r.get("launch") else ""
    heading(f"nodes ({count}; group {terminal_text(r.get('group'))}{launch})")
    for n in nodes:
        parts = []
        for domain, e in as_map(n.get("energy")).items():
            e = as_map(e)
            if e.get("energy_j") is None:
                continue
            note = "" if e.get("counted", True) else f" (covered by {e.get('covered_by')})"
            parts.append(f"{domain} {energy(e.get('energy_j'))}{note}")
        say(
            f"  {str(n.get('label')):<16} rank {n.get('rank')}  {n.get('status')}  exit "
            f"{n.get('exit_code')}  {fmt(n.get('duration_s'), '.1f')} s  "
            + (", ".join(parts) or "no energy")
        )
        devices = as_list(n.get("devices"))
        if devices:
            say("      metered " + ", ".join(map(str, devices)))
        elsewhere = as_map(n.get("metered_elsewhere"))
        if elsewhere:
            say("      left to " + ", ".join(f"{k} -> run {v}" for k, v in elsewhere.items()))


def _say_evidence(say: Any, a: Mapping, pct_s: str) -> None:
    """Another meter's figures for the run (evidence, not counted): energy, CO2e, why."""
    co2, co2_pct = a.get("co2_g"), a.get("co2_disagreement_pct")
    co2_s = "" if co2 is None else f", {fmt(co2, '.4g')} gCO2e"
    co2_s += "" if co2_pct is None else f" ({fmt(co2_pct, '+.1f')}%)"
    say(f"  vs    {energy(a.get('energy_j'))}  {a.get('meter')}:{a.get('method')} "
        f"[{a.get('scope')}, evidence]{pct_s}{co2_s}")  # fmt: skip
    say(f"        why: {a.get('why')}")

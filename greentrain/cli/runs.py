"""``greentrain runs`` (list), ``greentrain show RUN`` (detail) and ``greentrain rm RUN``.

A run group (a multi-node job, one wrapper per node) is one row of ``runs``, with its number of
nodes; ``show GROUP`` adds a table of its nodes (host, rank, status, the devices each metered,
its energy, and what was counted elsewhere); ``rm GROUP`` deletes every node's run.

Whatever a run record holds, these print it: every text from the record goes to the terminal
through :func:`greentrain.report.escape.terminal_text` (control characters, escape sequences
and line breaks shown escaped, never raw; rich markup and emoji codes never interpreted), a
value of the wrong type is shown as its ``repr`` marked ``(invalid)``, and ``--json`` is
always valid JSON (NaN and infinities as ``null``, as the store writes them).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from greentrain.cli._app import app
from greentrain.cli.lookup import open_to_read, resolve_run
from greentrain.cli.options import check_status, parse_tags
from greentrain.errors import ConfigError
from greentrain.record.jsonable import dumps
from greentrain.record.nesting import counted_once
from greentrain.record.vocabulary import STATUSES
from greentrain.report.escape import terminal_text
from greentrain.report.reading import check_number, describe
from greentrain.report.runs import parse_time, run_is_estimated
from greentrain.report.unit_policy import energy_text, mass_text, policy_for
from greentrain.store import Store
from greentrain.units import format_energy, iso_utc

STORE_HELP = "Store file or postgresql:// URL (default $GREENTRAIN_STORE)."


def _invalid(value: object) -> str:
    return f"{describe(value)} (invalid)"


def _fmt(value: object, fmt: str) -> str:
    """``value`` formatted with ``fmt``; ``-`` for None; the repr marked invalid otherwise."""
    if value is None:
        return "-"
    number, why = check_number(value)
    return _invalid(value) if why is not None else format(number, fmt)


def _policy_cell(value: object, show) -> str:
    """``value`` shown by the unit policy's ``show``; ``-`` for None, marked when invalid."""
    if value is None:
        return "-"
    number, why = check_number(value)
    return _invalid(value) if why is not None else show(number)


def _energy(value: object) -> str:
    """Joules in a readable unit (``n/a`` for None), or the repr marked invalid."""
    number, why = check_number(value)
    return _invalid(value) if why is not None else format_energy(number)


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def _print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")


def _console() -> Console:
    return Console(highlight=False, emoji=False, markup=False)


@app.command("runs")
def runs_cmd(
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    tag: list[str] = typer.Option(None, "--tag", help="Only runs with tag KEY=VALUE (repeat)."),
    status: str = typer.Option(None, "--status", help="|".join(STATUSES)),
    name: str = typer.Option(None, "--name", help="Only runs with this name."),
    as_json: bool = typer.Option(False, "--json", help="Print the run objects as JSON."),
) -> None:
    """List runs (oldest first)."""
    check_status(status)
    tags = parse_tags(tag)
    with open_to_read(store) as st:
        runs = st.list_runs(status=status, tags=tags or None, name=name)
    if as_json:
        _print_json(runs)
        return
    table = Table(box=None, header_style="bold")
    # one unit per column, chosen like every other surface's (report.unit_policy)
    policy = policy_for(
        [check_number(r.get("energy_kwh"))[0] for r in runs],
        [check_number(r.get("co2_g"))[0] for r in runs],
    )
    energy_col, co2_col = policy.energy_unit, f"{policy.mass_unit}CO2e"
    columns = ("id", "name", "status", "nodes", "exit", "started (UTC)", "s", energy_col, co2_col,
               "tags")  # fmt: skip
    for col in columns:
        table.add_column(
            col,
            justify="right" if col in ("nodes", "exit", "s", energy_col, co2_col) else "left",
            no_wrap=col != "tags",
        )
    any_estimated = False
    for r in runs:
        estimated = run_is_estimated(r)
        any_estimated = any_estimated or estimated
        started = r.get("started_at")
        cells = [
            r.get("id"),
            r.get("name"),
            r.get("status"),
            str(len(_list(r.get("nodes")))) if _list(r.get("nodes")) else "",
            "-" if r.get("exit_code") is None else r["exit_code"],
            started[5:16].replace("T", " ") if isinstance(started, str) else started,
            _fmt(r.get("duration_s"), ".1f"),
            _policy_cell(r.get("energy_kwh"), policy.energy) + ("*" if estimated else ""),
            _policy_cell(r.get("co2_g"), policy.mass),
            " ".join(f"{k}={v}" for k, v in _map(r.get("tags")).items()),
        ]
        table.add_row(*(Text(terminal_text(c)) for c in cells))
    console = Console(highlight=False, emoji=False, width=max(Console().width, 120))
    if not runs:
        console.print("no runs")
        return
    console.print(table)
    console.print(_total_line(runs), markup=False)
    for r in runs:
        for cell in map(_map, _list(r.get("unreadable"))):
            line = f"run {r.get('id')}: {cell.get('field')} = {cell.get('value')} is unreadable"
            console.print(Text(terminal_text(line)))
    if any_estimated:
        console.print("* includes estimated figures (see `greentrain show RUN`)", markup=False)


def _total_line(runs: list[dict]) -> str:
    """The listing's total: energy and CO2e of the runs, each nested run counted once (inside
    the run it ran in, :func:`greentrain.record.nesting.counted_once`)."""
    counted = [r for r, once in zip(runs, counted_once(runs), strict=True) if once]
    kwh = [v for v in (check_number(r.get("energy_kwh"))[0] for r in counted) if v is not None]
    co2 = [v for v in (check_number(r.get("co2_g"))[0] for r in counted) if v is not None]
    # never a 0 standing for "unknown"; units as every other surface chooses them
    kwh_text = energy_text(sum(kwh)) if kwh else "n/a energy"
    co2_text = mass_text(sum(co2)) if co2 else "n/a CO2e"
    line = f"total {len(runs)} runs: {kwh_text}, {co2_text}"
    nested = len(runs) - len(counted)
    if nested:
        line += f" ({nested} nested runs counted once, inside the runs they ran in)"
    missing = len(counted) - len(kwh)
    if missing:
        line += f"; {missing} runs without an energy figure are not in it"
    return line


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
        _print_json(r)
        return
    c = _console()

    def say(text: str) -> None:  # every line of user data: escaped, plain text
        c.print(Text(terminal_text(text)))

    def heading(text: str) -> None:
        c.print(Text(text, style="bold"))

    head = Text()
    head.append(terminal_text(r.get("id")), style="bold")
    head.append(f"  {terminal_text(r.get('name'))}  ")
    head.append(terminal_text(r.get("status")), style="bold")
    head.append(f"  exit {terminal_text(r.get('exit_code'))}")
    c.print(head)
    if r.get("parent"):
        say(f"  nested in {r['parent']} (its energy is inside that run's figures; counted once)")
    children = _list(r.get("children"))
    if children:
        say(f"  nested runs {' '.join(map(str, children))} (inside this run's figures)")
    for cell in map(_map, _list(r.get("unreadable"))):
        say(f"  unreadable {cell.get('field')} = {cell.get('value')} (left out of the figures)")
    command = r.get("command")
    say(f"  command   {' '.join(map(str, command)) if isinstance(command, list) else command}")
    git = _map(r.get("git"))
    say(f"  cwd       {r.get('cwd')}   git {git.get('commit')} dirty={git.get('dirty')}")
    say(
        f"  started   {r.get('started_at')}  ended {r.get('ended_at')}  "
        f"({_fmt(r.get('duration_s'), '.2f')} s)"
    )
    env = _map(r.get("env"))
    say(
        f"  host      {env.get('host')}  cpu {env.get('cpu_model')}  gpus {env.get('gpu_models')}"
        f"  torch {env.get('torch_version')}  cuda {env.get('cuda_version')}"
    )
    tags = _map(r.get("tags"))
    if tags:
        say("  tags      " + " ".join(f"{k}={v}" for k, v in tags.items()))
    if r.get("config"):
        say("  config    " + dumps(r["config"]))
    heading("energy")
    for domain, e in _map(r.get("energy")).items():
        if not isinstance(e, Mapping):
            say(f"  {domain:<5} {_invalid(e)}")
            continue
        if e.get("energy_j") is None:
            say(f"  {domain:<5} n/a  {e.get('reason', '')}")
            continue
        est = " (estimate)" if e.get("estimated") else ""
        say(f"  {domain:<5} {_energy(e['energy_j']):>10}  {e.get('source')}{est}")
        for a in _list(e.get("alternatives")):
            a = _map(a)
            pct = a.get("disagreement_pct")
            pct_s = "" if pct is None else f" ({_fmt(pct, '+.1f')}%)"
            say(
                f"        alt {_energy(a.get('energy_j')):>10}  "
                f"{a.get('meter')}:{a.get('method')}{pct_s}"
            )
    carbon = _map(r.get("carbon"))
    say(
        f"  total {_energy(r.get('energy_j'))} = {_fmt(r.get('energy_kwh'), '.4g')} kWh, "
        f"{_fmt(r.get('co2_g'), '.4g')} gCO2e  [{carbon.get('intensity_g_per_kwh')} g/kWh "
        f"{carbon.get('source')} year {carbon.get('year')}, PUE {carbon.get('pue')}]"
    )
    baseline = _map(r.get("baseline"))
    if baseline:
        say(
            f"  baseline {_fmt(baseline.get('duration_s'), '.1f')} s, idle power_w "
            f"{baseline.get('power_w')}; net {_energy(r.get('net_energy_j'))}"
        )
    heading("meters")
    for m in map(_map, _list(r.get("meters"))):
        state = f"error: {m['error']}" if m.get("error") else ("ok" if m.get("available") else None)
        fix = f"  (fix: {m['fix']})" if m.get("fix") and not m.get("available") else ""
        say(f"  {str(m.get('meter')):<10} {state if state else m.get('reason')}{fix}")
    windows = _list(r.get("windows"))
    if windows:
        heading(f"windows ({len(windows)}; the metrics logged in each below it)")
        t0 = parse_time(r.get("started_at"))
        logged = [_map(m) for m in _list(r.get("metrics"))]
        for w in map(_map, windows[:50]):
            parts = [
                f"{d} {_energy(_map(v).get('energy_j'))}"
                for d, v in _map(w.get("energy")).items()
                if v
            ]
            number = _map(w.get("info")).get("index", w.get("index"))  # epochs from 1
            say(
                f"  {str(number):>3} {str(w.get('name')):<10} "
                f"{_fmt(w.get('duration_s'), '.2f')} s  " + ", ".join(parts)
            )
            for m in _logged_in(w, logged, t0):
                say("        " + dumps({k: v for k, v in m.items() if k != "time_s"}))
    metrics = _list(r.get("metrics"))
    if metrics:
        heading(f"metrics ({len(metrics)} entries; last shown)")
        say("  " + dumps(metrics[-1]))
    events = _list(r.get("events"))
    if events:
        heading(f"events ({len(events)})")
        for e in map(_map, events[-50:]):
            t = check_number(e.get("t"))[0]
            when = "?" if t is None else iso_utc(t)
            rest = {k: v for k, v in e.items() if k not in ("t", "event")}
            say(f"  {when}  {e.get('event')}  " + (dumps(rest) if rest else ""))
    _show_nodes(r, say, heading)


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
    nodes = [_map(n) for n in _list(r.get("nodes"))]
    if not nodes:
        if r.get("group") is not None:
            say(f"  part of group {r['group']} (greentrain show {r['group']} for the whole run)")
        return
    heading(f"nodes ({len(nodes)}; group {terminal_text(r.get('group'))})")
    for n in nodes:
        parts = []
        for domain, e in _map(n.get("energy")).items():
            e = _map(e)
            if e.get("energy_j") is None:
                continue
            note = "" if e.get("counted", True) else f" (covered by {e.get('covered_by')})"
            parts.append(f"{domain} {_energy(e.get('energy_j'))}{note}")
        say(
            f"  {str(n.get('label')):<16} rank {n.get('rank')}  {n.get('status')}  exit "
            f"{n.get('exit_code')}  {_fmt(n.get('duration_s'), '.1f')} s  "
            + (", ".join(parts) or "no energy")
        )
        devices = _list(n.get("devices"))
        if devices:
            say("      metered " + ", ".join(map(str, devices)))
        elsewhere = _map(n.get("metered_elsewhere"))
        if elsewhere:
            say("      left to " + ", ".join(f"{k} -> run {v}" for k, v in elsewhere.items()))


@app.command("rm")
def rm_cmd(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(
        False, "--force", help="Delete even a run that is still going (its wrapper is alive)."
    ),
) -> None:
    """Delete a run and everything recorded for it (a running one only with --force)."""
    with Store(store, create=False) as st:
        full = st.resolve_id(run)
        what = f"group {full}" if st.is_group(full) else f"run {full}"
        if not force and st.get_run(full)["status"] == "running":
            raise ConfigError(
                f"{what} is still going; wait for it to end, or pass --force to delete it "
                "(its wrappers then record nothing more)"
            )
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"refusing to delete {what} without --yes (no terminal)")
            if not typer.confirm(f"delete {terminal_text(what)}?", default=False):
                raise typer.Exit(1)
        deleted = st.delete_run(full)
    extra = f" ({len(deleted)} runs)" if len(deleted) > 1 else ""
    print(terminal_text(f"deleted {full}{extra}"))

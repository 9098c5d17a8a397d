"""``greentrain runs`` (list), ``greentrain show RUN`` (detail) and ``greentrain rm RUN``."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from greentrain.cli._app import app
from greentrain.cli.options import check_status, parse_tags
from greentrain.errors import ConfigError
from greentrain.store import Store
from greentrain.units import format_energy


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")


@app.command("runs")
def runs_cmd(
    store: str = typer.Option(None, "--store", help="Store file (default $GREENTRAIN_STORE)."),
    tag: list[str] = typer.Option(None, "--tag", help="Only runs with tag KEY=VALUE (repeat)."),
    status: str = typer.Option(None, "--status", help="running|finished|failed|interrupted"),
    name: str = typer.Option(None, "--name", help="Only runs with this name."),
    as_json: bool = typer.Option(False, "--json", help="Print the run objects as JSON."),
) -> None:
    """List runs (oldest first)."""
    check_status(status)
    tags = parse_tags(tag)
    with Store(store, create=False) as st:
        runs = st.list_runs(status=status, tags=tags or None, name=name)
    if as_json:
        _print_json(runs)
        return
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "status", "exit", "started (UTC)", "s", "kWh", "gCO2e", "tags"):
        table.add_column(
            col,
            justify="right" if col in ("exit", "s", "kWh", "gCO2e") else "left",
            no_wrap=col != "tags",
        )
    any_estimated = False
    for r in runs:
        estimated = any(e.get("estimated") for e in r["energy"].values())
        any_estimated = any_estimated or estimated
        table.add_row(
            r["id"],
            escape(r["name"]),
            r["status"],
            "-" if r["exit_code"] is None else str(r["exit_code"]),
            r["started_at"][5:16].replace("T", " "),
            _fmt(r["duration_s"], ".1f"),
            _fmt(r["energy_kwh"], ".3g") + ("*" if estimated else ""),
            _fmt(r["co2_g"], ".3g"),
            escape(" ".join(f"{k}={v}" for k, v in r["tags"].items())),
        )
    console = Console(highlight=False, width=max(Console().width, 120))
    if not runs:
        console.print("no runs")
        return
    console.print(table)
    if any_estimated:
        console.print("* includes estimated figures (see `greentrain show RUN`)")


@app.command("show")
def show_cmd(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    store: str = typer.Option(None, "--store", help="Store file (default $GREENTRAIN_STORE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run object as JSON."),
) -> None:
    """Show one run: energy per domain with sources, windows, metrics, factors."""
    with Store(store, create=False) as st:
        r = st.get_run(run)
    if as_json:
        _print_json(r)
        return
    c = Console(highlight=False)

    def say(text: str) -> None:  # user data (commands, names, reasons) is not rich markup
        c.print(text, markup=False)

    c.print(
        f"[bold]{r['id']}[/]  {escape(r['name'])}  [bold]{r['status']}[/]  exit {r['exit_code']}"
    )
    say(f"  command   {' '.join(r['command'])}")
    say(f"  cwd       {r['cwd']}   git {r['git'].get('commit')} dirty={r['git'].get('dirty')}")
    say(f"  started   {r['started_at']}  ended {r['ended_at']}  ({_fmt(r['duration_s'], '.2f')} s)")
    env = r["env"]
    say(
        f"  host      {env.get('host')}  cpu {env.get('cpu_model')}  gpus {env.get('gpu_models')}"
        f"  torch {env.get('torch_version')}  cuda {env.get('cuda_version')}"
    )
    if r["tags"]:
        say("  tags      " + " ".join(f"{k}={v}" for k, v in r["tags"].items()))
    if r["config"]:
        say("  config    " + json.dumps(r["config"]))
    c.print("[bold]energy[/]")
    for domain, e in r["energy"].items():
        if e.get("energy_j") is None:
            say(f"  {domain:<5} n/a  {e.get('reason', '')}")
            continue
        est = " (estimate)" if e.get("estimated") else ""
        say(f"  {domain:<5} {format_energy(e['energy_j']):>10}  {e['source']}{est}")
        for a in e.get("alternatives", []):
            pct = a.get("disagreement_pct")
            pct_s = "" if pct is None else f" ({pct:+.1f}%)"
            say(
                f"        alt {format_energy(a['energy_j']):>10}  {a['meter']}:{a['method']}{pct_s}"
            )
    carbon = r.get("carbon") or {}
    say(
        f"  total {format_energy(r['energy_j'])} = {_fmt(r['energy_kwh'], '.4g')} kWh, "
        f"{_fmt(r['co2_g'], '.4g')} gCO2e  [{carbon.get('intensity_g_per_kwh')} g/kWh "
        f"{carbon.get('source')} year {carbon.get('year')}, PUE {carbon.get('pue')}]"
    )
    if r.get("baseline"):
        say(
            f"  baseline {r['baseline']['duration_s']:.1f} s, idle power_w "
            f"{r['baseline']['power_w']}; net {format_energy(r['net_energy_j'])}"
        )
    c.print("[bold]meters[/]")
    for m in r["meters"]:
        state = "error: " + m["error"] if m["error"] else ("ok" if m["available"] else m["reason"])
        say(
            f"  {m['meter']:<10} {state}"
            + (f"  (fix: {m['fix']})" if m["fix"] and not m["available"] else "")
        )
    if r["windows"]:
        c.print(f"[bold]windows[/] ({len(r['windows'])})")
        for w in r["windows"][:50]:
            parts = [f"{d} {format_energy(v['energy_j'])}" for d, v in w["energy"].items() if v]
            say(
                f"  {w['index']:>3} {w['name']:<10} {_fmt(w['duration_s'], '.2f')} s  "
                + ", ".join(parts)
            )
    if r["metrics"]:
        c.print(f"[bold]metrics[/] ({len(r['metrics'])} entries; last shown)")
        say("  " + json.dumps(r["metrics"][-1]))


@app.command("rm")
def rm_cmd(
    run: str = typer.Argument(..., help="Run id or unique prefix."),
    store: str = typer.Option(None, "--store", help="Store file (default $GREENTRAIN_STORE)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    force: bool = typer.Option(
        False, "--force", help="Delete even a run that is still going (its wrapper is alive)."
    ),
) -> None:
    """Delete a run and everything recorded for it (a running one only with --force)."""
    with Store(store, create=False) as st:
        full = st.resolve_id(run)
        if not force and st.get_run(full)["status"] == "running":
            raise ConfigError(
                f"run {full} is still going; wait for it to end, or pass --force to delete it "
                "(its wrapper then records nothing more)"
            )
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError(f"refusing to delete run {full} without --yes (no terminal)")
            if not typer.confirm(f"delete run {full}?", default=False):
                raise typer.Exit(1)
        st.delete_run(full)
    print(f"deleted {full}")

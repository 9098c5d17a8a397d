"""``greentrain runs`` (list) and ``greentrain rm RUN``; ``show`` is :mod:`greentrain.cli.show`.

A run group (a multi-node job, one wrapper per node) is one row of ``runs``, with its number of
nodes; ``runs --group G`` lists its nodes' runs one per line; ``rm GROUP`` deletes every node's
run. A listing shows the newest ``--limit`` runs (100 unless told), chosen in SQL with the
filters (:mod:`greentrain.store.selection`), and reads only those runs' rows, without their
windows and metrics (``--json`` prints the whole run objects).

Whatever a run record holds, these print it: every text from the record goes to the terminal
through :func:`greentrain.report.escape.terminal_text` (control characters, escape sequences
and line breaks shown escaped, never raw; rich markup and emoji codes never interpreted), a
value of the wrong type is shown as its ``repr`` marked ``(invalid)``, and ``--json`` is
always valid JSON (NaN and infinities as ``null``, as the store writes them).
"""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from greentrain.cli._app import app
from greentrain.cli.cells import as_list, as_map, fmt, policy_cell, print_json
from greentrain.cli.lookup import STORE_HELP, open_to_read
from greentrain.cli.options import check_status, parse_tags
from greentrain.errors import ConfigError
from greentrain.record.group_size import nodes_cell
from greentrain.record.nesting import counted_once
from greentrain.record.vocabulary import STATUSES
from greentrain.report.escape import terminal_text
from greentrain.report.reading import check_number
from greentrain.report.runs import parse_time, run_is_estimated
from greentrain.report.unit_policy import energy_text, mass_text, policy_for
from greentrain.store import Store
from greentrain.store.selection import RunQuery

DEFAULT_LIMIT = 100  # runs a listing shows unless --limit says otherwise


def parse_since(text: str | None) -> float | None:
    """``--since``: an ISO-8601 date or time (UTC unless it says otherwise) or an age such as
    ``90m``, ``12h``, ``7d``; unix seconds. ConfigError for anything else."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    units = {"m": 60.0, "h": 3600.0, "d": 86400.0}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    when = parse_time(text)
    if when is None:
        raise ConfigError(
            f"--since {text!r} is not a date or an age; write it as 2026-05-01, "
            "2026-05-01T12:00 (UTC) or 7d / 12h / 90m"
        )
    return when.timestamp()


@app.command("runs")
def runs_cmd(
    store: str = typer.Option(None, "--store", help=STORE_HELP),
    tag: list[str] = typer.Option(None, "--tag", help="Only runs with tag KEY=VALUE (repeat)."),
    status: str = typer.Option(None, "--status", help="|".join(STATUSES)),
    name: str = typer.Option(None, "--name", help="Only runs with this name."),
    group: str = typer.Option(
        None, "--group", help="The runs of this group's nodes, one line each (id or prefix)."
    ),
    since: str = typer.Option(
        None, "--since", help="Only runs started since: 2026-05-01[T12:00] (UTC) or 7d/12h/90m."
    ),
    limit: int = typer.Option(
        DEFAULT_LIMIT, "--limit", min=0, help="Show the newest N runs (0: all)."
    ),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip the newest N (the next page)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run objects as JSON."),
) -> None:
    """List runs (oldest first; the newest --limit of them)."""
    check_status(status)
    query = RunQuery(status=status, tags=parse_tags(tag) or {}, name=name,
                     since=parse_since(since), limit=limit or None, offset=offset)  # fmt: skip
    with open_to_read(store) as st:
        ids = None
        if group is not None:
            full = st.resolve_id(group)
            if not st.is_group(full):
                raise ConfigError(f"{full} is a run, not a group; list groups with greentrain runs")
            ids = st.member_ids(full)
        page = st.page(query, ids=ids, summary=not as_json)
    runs = page.runs
    if as_json:
        print_json(runs)
        more = _more_line(len(runs), page.total, query)
        if more:  # the JSON stays the page; what it left out is said beside it
            print(f"greentrain: {more}", file=sys.stderr)
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
            str(r.get("status")) + (" (incomplete)" if r.get("incomplete") is True else ""),
            nodes_cell(r),
            "-" if r.get("exit_code") is None else r["exit_code"],
            started[5:16].replace("T", " ") if isinstance(started, str) else started,
            fmt(r.get("duration_s"), ".1f"),
            policy_cell(r.get("energy_kwh"), policy.energy) + ("*" if estimated else ""),
            policy_cell(r.get("co2_g"), policy.mass),
            " ".join(f"{k}={v}" for k, v in as_map(r.get("tags")).items()),
        ]
        table.add_row(*(Text(terminal_text(c)) for c in cells))
    console = Console(highlight=False, emoji=False, width=max(Console().width, 120))
    if not runs:
        console.print("no runs")
        return
    console.print(table)
    console.print(_total_line(runs), markup=False)
    more = _more_line(len(runs), page.total, query)
    if more:
        console.print(more, markup=False)
    for r in runs:
        for cell in map(as_map, as_list(r.get("unreadable"))):
            line = f"run {r.get('id')}: {cell.get('field')} = {cell.get('value')} is unreadable"
            console.print(Text(terminal_text(line)))
    if any_estimated:
        console.print("* includes estimated figures (see `greentrain show RUN`)", markup=False)


def _more_line(shown: int, total: int | None, query: RunQuery) -> str:
    """What the page left out (older runs, or newer ones skipped), and how to see them."""
    skipped = query.offset
    older = None if total is None else total - skipped - shown
    if not skipped and older == 0:
        return ""
    parts = [f"showing {shown} of {total if total is not None else 'more'} runs"]
    if older is None or older > 0:
        left = "more older runs" if older is None else f"{older} older runs"
        parts.append(f"{left} not shown (--offset {skipped + shown} shows the next page back,"
                     " --limit 0 shows all)")  # fmt: skip
    if skipped:
        parts.append(f"the {skipped} newest skipped (--offset)")
    return "; ".join(parts)


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

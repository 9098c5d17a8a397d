"""``greentrain store merge A.db B.db ... --into C.db``: combine stores (per-node SQLite files
of a cluster without a shared database) into one file or PostgreSQL database.

``greentrain store sync [--store S | --all]``: land the run journals waiting on this machine
(:mod:`greentrain.store.journal`: writes a store that was down, locked, hung or full did not take
when the run made them)."""

from __future__ import annotations

import sys

import typer

from greentrain.cli._app import app
from greentrain.report.escape import terminal_text
from greentrain.store import Store, locate, redact
from greentrain.store.journal import journal_root, pending_journals, waiting_stores
from greentrain.store.merge import merge_stores

store_app = typer.Typer(
    name="store",
    help="Manage run stores: merge per-node stores into one, land waiting journals.",
    no_args_is_help=True,
)
app.add_typer(store_app)


@store_app.command("merge")
def merge_cmd(
    sources: list[str] = typer.Argument(..., help="Stores to merge (files or postgresql:// URLs)."),
    into: str = typer.Option(
        ..., "--into", help="The store to merge into (a file, created if missing, or a URL)."
    ),
) -> None:
    """Copy every run of SOURCES into --into: groups joined, duplicates refused, nothing lost.

    A run already in the target with the same content is counted once; the same run id with
    different content is refused, and a refused merge writes nothing. Journals still waiting
    for a source or the target on this machine land first.
    """
    report = merge_stores(sources, into)
    groups = ", ".join(f"{g} (+{n})" for g, n in sorted(report.groups.items()))
    print(
        terminal_text(
            f"merged {len(report.added)} runs from {len(sources)} stores into {redact(into)}"
            + (f"; {len(report.already)} were there already" if report.already else "")
            + (f"; groups: {groups}" if groups else "")
        )
    )


@store_app.command("sync")
def sync_cmd(
    store: str = typer.Option(
        None, "--store", help="Store file or postgresql:// URL (default $GREENTRAIN_STORE)."
    ),  # fmt: skip
    every: bool = typer.Option(False, "--all", help="Every store with journals waiting here."),
) -> None:
    """Land the run journals waiting on this machine: entries applied, already there, torn.

    Applying is keyed per entry, so syncing twice, or while another process syncs, stores
    nothing twice. A journal whose run is still going is left to its run.
    """
    targets = waiting_stores() if every else [store]
    if every and not targets:
        print(terminal_text(f"no journals waiting in {journal_root()}"))
    for target in targets:
        if not pending_journals(target):  # nothing to land: the store is not even opened
            print(terminal_text(f"{locate(target).shown}: no journals waiting"))
            continue
        with Store(target, sync=False) as st:
            report = st.sync_journals()
        print(terminal_text(
            f"{st.location.shown}: {report.journals} journals landed, {report.stored} entries "
            f"applied, {report.already} already there, {len(report.torn)} torn"
        ))  # fmt: skip
        for line in report.torn + report.kept:
            print(terminal_text(f"greentrain: {line}"), file=sys.stderr)

"""``greentrain store merge A.db B.db ... --into C.db``: combine stores (per-node SQLite files
of a cluster without a shared database) into one file or PostgreSQL database.

``greentrain store mark RUN --interrupted``: mark a run whose node was lost (or every running
member of a group) ``interrupted`` by hand, ended at its last sample.

``greentrain store sync [--store S | --all]``: land the run journals waiting on this machine
(:mod:`greentrain.store.journal`: writes a store that was down, locked, hung or full did not take
when the run made them)."""

from __future__ import annotations

import socket
import sys
import time

import typer

from greentrain.cli._app import app
from greentrain.errors import ConfigError
from greentrain.report.escape import terminal_text
from greentrain.store import Store, locate, ops, redact
from greentrain.store.journal import journal_root, pending_journals, waiting_stores
from greentrain.store.merge import merge_stores

store_app = typer.Typer(
    name="store",
    help="Manage run stores: merge per-node stores into one, land waiting journals, mark "
    "a lost node's run.",
    no_args_is_help=True,
)
app.add_typer(store_app)


@store_app.command("merge")
def merge_cmd(
    sources: list[str] = typer.Argument(..., help="Stores to merge (files or postgresql:// URLs)."),
    into: str = typer.Option(
        ..., "--into", help="The store to merge into (a file, created if missing, or a URL)."
    ),
    skip_running: bool = typer.Option(
        False, "--skip-running", help="Leave runs still running out (listed) instead of refusing."
    ),
) -> None:
    """Copy every run of SOURCES into --into: groups joined, duplicates refused, nothing lost.

    A run already in the target with the same content is counted once; the same run id with
    different content is refused, and a refused merge writes nothing. Journals still waiting
    for a source or the target on this machine land first.
    """
    report = merge_stores(sources, into, skip_running=skip_running)
    groups = ", ".join(f"{g} (+{n})" for g, n in sorted(report.groups.items()))
    print(
        terminal_text(
            f"merged {len(report.added)} runs from {len(sources)} stores into {redact(into)}"
            + (f"; {len(report.already)} were there already" if report.already else "")
            + (f"; groups: {groups}" if groups else "")
            + (f"; left out, still running: {', '.join(report.skipped)}" if report.skipped else "")
        )
    )


@store_app.command("mark")
def mark_cmd(
    run: str = typer.Argument(..., help="Run or group id (or a unique prefix)."),
    interrupted: bool = typer.Option(
        False, "--interrupted", help="Mark it interrupted (the only mark there is; required)."
    ),
    store: str = typer.Option(
        None, "--store", help="Store file or postgresql:// URL (default $GREENTRAIN_STORE)."
    ),
) -> None:
    """Mark a running run whose node was lost `interrupted`, ended at its last sample with the
    energy of that sample (a group: each of its running members). Readers do this by
    themselves once a run's heartbeat is older than its bound; this is for a run without one.
    """
    if not interrupted:
        raise ConfigError("say what to mark: greentrain store mark RUN --interrupted")
    with Store(store, create=False) as st:
        full = st.resolve_id(run)
        ids = st.member_ids(full) if st.is_group(full) else [full]
        running = [i for i, status in st.statuses(ids).items() if status == "running"]
        if not running:
            raise ConfigError(f"{full} is not running: nothing to mark")
        event = {"t": time.time(), "event": "marked interrupted",
                 "detail": f"by hand (greentrain store mark) on {socket.gethostname()}; "
                 "energy is the last sample"}  # fmt: skip
        for run_id in running:
            st.write(ops.AbandonRun(run_id, ended_unix=None, event=event))
    print(terminal_text(f"marked {len(running)} run(s) interrupted: {', '.join(running)}"))


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

"""``greentrain store merge A.db B.db ... --into C.db``: combine stores (per-node SQLite files
of a cluster without a shared database) into one file or PostgreSQL database."""

from __future__ import annotations

import typer

from greentrain.cli._app import app
from greentrain.report.escape import terminal_text
from greentrain.store import redact
from greentrain.store.merge import merge_stores

store_app = typer.Typer(
    name="store",
    help="Manage run stores: merge per-node stores into one.",
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
    different content is refused, and a refused merge writes nothing.
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

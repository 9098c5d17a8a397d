"""``greentrain demo``: dense vs ssProp on real offline data, metered, in about two minutes."""

from __future__ import annotations

from typing import Any

import typer

from greentrain.cli._app import app
from greentrain.errors import ConfigError
from greentrain.report.unit_policy import policy_for


@app.command("demo")
def demo(
    epochs: int = typer.Option(
        None, help="Epochs per run (default 2; each epoch of each run ~20-45 s on a 2-core CPU)."
    ),
    store: str = typer.Option(None, help="Run store (default ./reports/greentrain.db)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    meter: list[str] = typer.Option(
        None, help="Meter to use, repeatable (default: all available)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    limit_batches: int = typer.Option(
        None,
        hidden=True,
        help="Advanced: train and evaluate at most N batches per epoch (smoke tests, CI).",
    ),
) -> None:
    """Train ResNet-18 dense and with ssProp on scikit-learn's digits; compare energy & accuracy."""
    from greentrain.studies.demo import DEFAULT_EPOCHS, run_demo  # torch: this command only

    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    rows = run_demo(
        epochs=epochs or DEFAULT_EPOCHS,
        store=store,
        device=device,
        limit_batches=limit_batches,
        meters=list(meter) if meter else None,
        progress=progress,
        echo=typer.echo,
    )
    typer.echo("")
    typer.echo(render_table(rows))


def _fmt(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def render_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as plain text (a fixed-width table + notes), ready to print; energy,
    CO2e and accuracy per energy in the units of every other surface (report.unit_policy)."""
    p = policy_for([r["energy_kwh"] for r in rows], [r["co2_g"] for r in rows])
    headers = [
        "run",
        "test acc",
        "time (s)",
        f"energy ({p.energy_unit})",
        f"{p.mass_unit}CO2e",
        "bwd GFLOPs/iter",
        f"acc per {p.energy_unit} (%)",
    ]
    table = [headers]
    for r in rows:
        mark = "*" if r["estimated"] else ""
        table.append(
            [
                r["mode"] or r["name"],
                _fmt(r["test_acc"], ".4f"),
                _fmt(r["duration_s"], ".1f"),
                p.energy(r["energy_kwh"]) + mark,
                p.mass(r["co2_g"]),
                _fmt(
                    None
                    if r["backward_flops_per_iter"] is None
                    else r["backward_flops_per_iter"] / 1e9,
                    ".3f",
                ),
                p.per_energy(r["acc_per_kwh"]),
            ]
        )
    if len(rows) == 2:
        dense, sparse = rows

        def ratio(key: str) -> str:
            a, b = dense.get(key), sparse.get(key)
            return f"{b / a:.2f}x" if a and b is not None else "n/a"

        table.append(
            [
                "ssprop/dense",
                ratio("test_acc"),
                ratio("duration_s"),
                ratio("energy_kwh"),
                ratio("co2_g"),
                ratio("backward_flops_per_iter"),
                ratio("acc_per_kwh"),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0 or (len(rows) == 2 and n == len(rows)):
            lines.append("  ".join("-" * w for w in widths))
    sources = sorted({s for r in rows for s in r["energy_sources"]})
    lines.append("")
    lines.append("energy source: " + (", ".join(sources) if sources else "none measured"))
    if any(r["estimated"] for r in rows):
        lines.append("* estimated (no hardware energy counter on this machine; a model of power)")
    lines.append("ids: " + ", ".join(f"{r['mode']} {r['id']}" for r in rows))
    return "\n".join(lines)

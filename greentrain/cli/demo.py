"""``greentrain demo``: dense vs ssProp on real offline data, metered, in about two minutes."""

from __future__ import annotations

import typer

from greentrain.cli._app import app


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
    from greentrain.jobs.demo import DEFAULT_EPOCHS, render_table, run_demo

    if epochs is not None and epochs < 1:
        from greentrain.errors import ConfigError

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

"""``greentrain run [OPTIONS] -- COMMAND ...``: meter a command and record it in the store."""

from __future__ import annotations

import typer

from greentrain.cli._app import app
from greentrain.cli.options import parse_tags
from greentrain.errors import ConfigError


@app.command(
    "run",
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def run_cmd(
    command: list[str] = typer.Argument(None, help="The command to meter (after --)."),
    name: str = typer.Option(None, "--name", help="Run name (default: the script's name)."),
    tag: list[str] = typer.Option(None, "--tag", help="KEY=VALUE label (repeatable)."),
    store: str = typer.Option(
        None, "--store", help="Store file (default $GREENTRAIN_STORE or ./reports/greentrain.db)."
    ),
    meter: list[str] = typer.Option(
        None, "--meter", help="Meter to use (repeatable; default: every available one)."
    ),
    country: str = typer.Option(None, "--country", help="ISO-3166 alpha-3 code for the grid."),
    region: str = typer.Option(None, "--region", help="Region within --country (e.g. a state)."),
    carbon_intensity: float = typer.Option(
        None, "--carbon-intensity", help="Grid intensity in gCO2e/kWh (overrides --country)."
    ),
    pue: float = typer.Option(1.0, "--pue", help="Data-centre PUE (>= 1.0)."),
    baseline: float = typer.Option(
        0.0, "--baseline", help="Seconds of idle power to measure first (net energy)."
    ),
) -> int:
    """Meter COMMAND's energy and carbon; stream its output; exit with its exit code."""
    from greentrain.harness import resolve_meter_names, run_command

    argv = list(command or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command given; usage: greentrain run [OPTIONS] -- COMMAND ...")
    if argv[0].startswith("-"):
        raise ConfigError(
            f"unknown option {argv[0]!r}; put the command after --: greentrain run -- COMMAND"
        )
    if pue < 1.0:
        raise ConfigError(f"--pue must be >= 1.0 (got {pue}); 1.0 means no facility overhead")
    if baseline < 0:
        raise ConfigError(f"--baseline must be >= 0 seconds (got {baseline})")
    if carbon_intensity is not None and carbon_intensity < 0:
        raise ConfigError(f"--carbon-intensity must be >= 0 g/kWh (got {carbon_intensity})")
    tags = parse_tags(tag)
    meters = resolve_meter_names(meter) if meter else None
    result = run_command(
        argv,
        name=name,
        tags=tags,
        store=store,
        meters=meters,
        country=country,
        region=region,
        carbon_intensity=carbon_intensity,
        pue=pue,
        baseline_s=baseline,
    )
    raise typer.Exit(result.exit_code)

"""``greentrain run [OPTIONS] -- COMMAND ...``: meter a command and record it in the store."""

from __future__ import annotations

import typer

from greentrain.cli._app import app
from greentrain.cli.options import budget_options, parse_tags
from greentrain.cli.plain_values import PlainValuesCommand
from greentrain.errors import ConfigError
from greentrain.integrations.mirror import Mirror
from greentrain.integrations.trackers import make_tracker
from greentrain.run import CarbonOptions, RunOptions, run_command
from greentrain.run.budget import Budget
from greentrain.run.recorder import default_name

_BUDGET = budget_options()


@app.command(
    "run",
    cls=PlainValuesCommand,  # parsed without pydantic: part of the 0.5 s start (performance.md)
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
    grace: float = typer.Option(
        10.0,
        "--grace",
        help="Seconds the job's processes get after SIGTERM before they are killed.",
    ),
    sample_s: float = typer.Option(
        10.0,
        "--sample-s",
        help="Seconds between samples of energy so far (0: none; a dead wrapper keeps the last).",
    ),
    mirror: list[str] = typer.Option(
        None,
        "--mirror",
        help="Mirror the run to mlflow or wandb, live as windows close; "
        "repeatable; configured by MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, WANDB_*.",
    ),
    group: str = typer.Option(
        None,
        "--group",
        help="Run group id, the same on every node of a multi-node job (default: SLURM's job "
        "step or torchrun's --rdzv-id).",
    ),
    epochs: int = typer.Option(
        None,
        "--epochs",
        help="Epochs the job will run, for the energy forecast (default: what the job's "
        "client.config says).",
    ),
    budget_kwh: float = _BUDGET["budget_kwh"],
    budget_gco2: float = _BUDGET["budget_gco2"],
    budget_forecast: bool = _BUDGET["budget_forecast"],
    # -- Prometheus (issue 24): serve the run's counters; read DCGM's GPU energy from a server
    prometheus_port: int = typer.Option(
        None,
        "--prometheus-port",
        help="Serve the run's energy (J) and CO2e (g) counters on this port for Prometheus to "
        "scrape, until the run ends.",
    ),
    prometheus_url: str = typer.Option(
        None,
        "--prometheus-url",
        envvar="GREENTRAIN_PROMETHEUS_URL",
        help="Prometheus server whose DCGM exporter series give this host's GPU energy "
        "(adds the prometheus meter).",
    ),
    # -- clusters (issue 24): the group's expected size, a budget per node -------------------
    group_size: int = typer.Option(
        None,
        "--group-size",
        help="Nodes (wrappers) the group expects (default: torchrun's --nnodes, PET_NNODES or "
        "SLURM's tasks); a group with fewer reads as incomplete.",
    ),
    budget_per_node: bool = typer.Option(
        False,
        "--budget-per-node",
        help="Under a run group, --budget-kwh/--budget-gco2 are each node's own budget "
        "(default: the whole group's).",
    ),
) -> int:
    """Meter COMMAND's energy and carbon; stream its output; exit with its exit code."""
    argv = list(command or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command given; usage: greentrain run [OPTIONS] -- COMMAND ...")
    if argv[0].startswith("-"):
        raise ConfigError(
            f"unknown option {argv[0]!r}; put the command after --: greentrain run -- COMMAND"
        )
    options = RunOptions(
        store=store,
        name=name,
        tags=parse_tags(tag),
        meters=list(meter) if meter else None,
        carbon=CarbonOptions(country, region, carbon_intensity, pue),
        baseline_s=baseline,
        grace_s=grace,
        sample_s=sample_s,
        group=group,
        group_size=group_size,
        epochs=epochs,
        budget=Budget(budget_kwh, budget_gco2, budget_forecast, per_node=budget_per_node),
        prometheus_port=prometheus_port,
        prometheus_url=prometheus_url,
    )
    listeners = []
    if mirror:
        factors = options.carbon.factors()
        for target in dict.fromkeys(mirror):  # the tracker is reached now, before the job starts
            listeners.append(
                Mirror(
                    make_tracker(target),
                    name=options.name or default_name(argv),
                    tags=options.tags,
                    intensity_g_per_kwh=factors.intensity_g_per_kwh,
                    pue=factors.pue,
                )
            )
    result = run_command(argv, options, listeners=listeners)
    raise typer.Exit(result.exit_code)

"""``greentrain sweep``: a grid of metered ``greentrain train`` runs, resumable by sweep id."""

from __future__ import annotations

import typer

from greentrain.cli._app import app
from greentrain.cli.schedules import SCHEDULE_CHOICES, check_schedules
from greentrain.cli.train import parse_train_options
from greentrain.errors import EXIT_BUDGET


@app.command(
    "sweep",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sweep(
    ctx: typer.Context,
    model: str = typer.Option("resnet18", help="Comma list of models."),
    dataset: str = typer.Option("digits", help="Comma list of datasets."),
    drop: str = typer.Option("0,0.8", help="Comma list of drop rates (0 = dense)."),
    schedule: str = typer.Option("bar", help=f"Comma list of schedules: {SCHEDULE_CHOICES}."),
    seed: str = typer.Option("0", help="Comma list of seeds."),
    sweep_id: str = typer.Option(None, help="Name the sweep (default: hash of grid + flags)."),
    executor: str = typer.Option("local", help="local | slurm (submitit)."),
    jobs: int = typer.Option(1, help="local: points run at once (one GPU each when GPUs exist)."),
    cluster: str = typer.Option(
        None, help="slurm executor: submitit cluster (default auto; 'local' for a dry run)."
    ),
    folder: str = typer.Option("runs/submitit", help="slurm executor: submitit log folder."),
    slurm_partition: str = typer.Option(None, help="slurm: partition."),
    timeout_min: int = typer.Option(None, help="slurm: time limit per point, minutes."),
    gpus_per_node: int = typer.Option(None, help="slurm: GPUs per point."),
    cpus_per_task: int = typer.Option(None, help="slurm: CPUs per point."),
    dry_run_forecast: bool = typer.Option(
        False,
        "--dry-run-forecast",
        help="Forecast the sweep's energy and CO2e point by point: measured (finished) or "
        "predicted from its own short probe run, instead of running it.",
    ),
    probe_epochs: int = typer.Option(
        3, help="--dry-run-forecast: epochs each probe trains (at most the run's epochs)."
    ),
) -> None:
    """Run a grid of training runs; re-running skips finished points and retries failed ones.

    Any further options (e.g. --epochs 5 --store s.db --max-steps-per-epoch 10) are passed
    to every `greentrain train` point unchanged. With --budget-kwh/--budget-gco2 the points
    share one budget: no point starts once it is spent, and the point that crosses it stops
    (exit code 124).
    """
    check_schedules("--schedule", schedule, many=True)  # before torch loads
    from greentrain.studies.sweep import run_sweep  # torch: this command only
    from greentrain.studies.sweep_plan import parse_grid, plan

    base, run = parse_train_options(list(ctx.args), resolved=False)
    grid = parse_grid(
        {"model": model, "dataset": dataset, "drop": drop, "schedule": schedule, "seed": seed}
    )
    if dry_run_forecast:
        from greentrain.studies.sweep_forecast import forecast_sweep

        factors = run.carbon.factors()
        made = forecast_sweep(
            plan(grid, base, run, sweep_id),
            run.store,
            probe_epochs,
            intensity_g_per_kwh=factors.intensity_g_per_kwh,
            pue=factors.pue,
            echo=typer.echo,
        )
        for line in made.lines():
            typer.echo(line)
        return
    slurm_params = {
        k: v
        for k, v in {
            "slurm_partition": slurm_partition,
            "timeout_min": timeout_min,
            "gpus_per_node": gpus_per_node,
            "cpus_per_task": cpus_per_task,
        }.items()
        if v is not None
    }
    sid, outcomes = run_sweep(
        grid,
        base,
        run,
        sweep_id=sweep_id,
        executor=executor,
        jobs=jobs,
        cluster=cluster,
        folder=folder,
        slurm_params=slurm_params,
        echo=typer.echo,
    )
    for o in outcomes:
        typer.echo(f"{o.status:9s} {o.key}  run {o.run_id or '-'}  ({o.detail})")
    failed = [o for o in outcomes if o.status == "failed"]
    stopped = [o for o in outcomes if o.status == "budget"]
    finished = len(outcomes) - len(failed) - len(stopped)
    typer.echo(f"sweep {sid}: {finished}/{len(outcomes)} points finished")
    if stopped and not failed:
        typer.echo(
            f"stopped: the sweep's budget was reached; {len(stopped)} point(s) not finished "
            "(run again with a larger budget to finish them)",
            err=True,
        )
        raise typer.Exit(EXIT_BUDGET)
    if failed:
        typer.echo(
            f"error: {len(failed)} point(s) failed; fix the cause and run the same command "
            "again (finished points are skipped)",
            err=True,
        )
        raise typer.Exit(1)

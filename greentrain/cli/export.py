"""``greentrain export``: tables, a carbon statement, a model card's CO2 block and plots from the
run store; or the runs themselves into MLflow or W&B (``--to``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from greentrain.cli._app import app
from greentrain.cli.lookup import resolve_run
from greentrain.cli.options import check_status, parse_tags
from greentrain.errors import ConfigError
from greentrain.integrations.exporting import export_runs
from greentrain.integrations.trackers import TARGETS, make_tracker
from greentrain.record.vocabulary import STATUSES
from greentrain.report import formats
from greentrain.report.formatting import PLOT_SUFFIXES
from greentrain.store import Store, default_target, is_url, redact
from greentrain.store.guard import refuse_store_path


def select_runs(
    store: Store,
    *,
    tags: dict[str, str] | None = None,
    run_ids: list[str] | None = None,
    sweep: str | None = None,
    status: str | None = None,
) -> list[dict]:
    """Runs of ``store`` matching every given criterion (all runs when none is given).

    ``run_ids`` may be unique prefixes or unique run names; ``sweep`` selects the runs tagged
    ``sweep=<id>`` (the tag ``greentrain sweep`` puts on each of its runs).
    """
    check_status(status)
    want_tags = dict(tags or {})
    if sweep is not None:
        want_tags["sweep"] = sweep
    ids = [resolve_run(store, r) for r in run_ids] if run_ids else None
    return store.list_runs(status=status, tags=want_tags or None, ids=ids)


@app.command("export")
def export_cmd(
    runs_arg: list[str] = typer.Argument(
        None, metavar="[RUN]...", help="Select these run ids or prefixes (as --run)."
    ),
    fmt: str = typer.Option("markdown", "--format", "-f", help=formats.help_text()),
    group_by: str = typer.Option(
        None,
        "--group-by",
        help="Comma-separated config keys that form configurations, beyond model, dataset, "
        "schedule and drop rate (default: every key that differs among the runs; '' pools "
        "everything else, with a note naming what was pooled).",
    ),
    metric: str = typer.Option(
        None,
        "--metric",
        help="Accuracy metric to report (default: what the runs logged, the first of "
        "test_acc, val_acc, eval_accuracy).",
    ),
    allow_fake: bool = typer.Option(
        False,
        "--allow-fake",
        help="Let runs metered by the test meter 'fake' into a statement or model card.",
    ),
    to: str = typer.Option(
        None, "--to", help="Write the selected runs into a tracker instead: mlflow | wandb."
    ),
    tracking_uri: str = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI (default: MLflow's own, $MLFLOW_...)."
    ),
    project: str = typer.Option(
        None,
        "--project",
        help="MLflow experiment or W&B project (default $MLFLOW_EXPERIMENT_NAME / "
        "$WANDB_PROJECT, else greentrain).",
    ),
    training_type: str = typer.Option(
        None,
        "--training-type",
        help="model-card: pre-training | fine-tuning (default: the runs' config, else "
        "pre-training).",
    ),
    tag: list[str] = typer.Option(None, "--tag", help="Select runs with tag KEY=VALUE (repeat)."),
    run: list[str] = typer.Option(None, "--run", help="Select this run id or prefix (repeat)."),
    sweep: str = typer.Option(None, "--sweep", help="Select the runs of this sweep id."),
    status: str = typer.Option(
        None, "--status", help="Select runs with this status: " + " | ".join(STATUSES) + "."
    ),
    output: Path = typer.Option(None, "-o", "--output", help="Write here instead of stdout."),
    plot: Path = typer.Option(
        None, "--plot", help="Also write accuracy-vs-kWh and energy-per-epoch figures (.pdf/.png)."
    ),
    store: str = typer.Option(
        None,
        "--store",
        help="Run store, a file or postgresql:// URL (default: $GREENTRAIN_STORE or "
        "./reports/greentrain.db).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Overwrite -o/--plot even when it is an SQLite database."
    ),
) -> None:
    """Export the selected runs as a paper table, a carbon statement (and its appendix), a
    model card's co2_eq_emissions block, CSV/JSON and plots; or into MLflow/W&B with --to.

    Tables pool the finished runs of each configuration over seeds: a configuration is model,
    dataset, schedule, drop rate and every other config key that differs among the runs
    (--group-by overrides); totals and the statement include failed and interrupted runs.
    """
    from greentrain.report import plots  # pandas, matplotlib: this command only

    run = [*(runs_arg or []), *(run or [])]
    if to is not None:
        if output is not None or plot is not None:
            raise ConfigError("-o and --plot go with --format; --to writes into the tracker")
        _export_to_tracker(to, store, run, tag, sweep, status, tracking_uri, project)
        return
    if tracking_uri is not None:
        raise ConfigError("--tracking-uri goes with --to mlflow")
    if fmt not in formats.NAMES:
        raise ConfigError(f"--format {fmt!r}: use one of {', '.join(formats.NAMES)}")
    for flag, target in (("-o", output), ("--plot", plot)):
        if target is not None and target.is_dir():
            raise ConfigError(f"{flag} {target} is a directory; give a file name inside it")
        if target is not None:
            refuse_store_path(target, flag=flag, force=force)
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {plot}: end the file name in {', '.join(PLOT_SUFFIXES)}")
    runs = _selected(store, run, tag, sweep, status)
    keys = None if group_by is None else [k.strip() for k in group_by.split(",") if k.strip()]
    options = formats.RenderOptions(keys, training_type, metric, allow_fake)
    text = formats.render(runs, fmt, options)
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"-o {output}: cannot write it ({err.strerror})") from err
        print(f"wrote {output} ({len(runs)} runs)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if plot is not None:
        plots.save_plots(runs, plot)
        print(f"wrote {plot}", file=sys.stderr)


def _selected(
    store: str | None,
    run: list[str],
    tag: list[str] | None,
    sweep: str | None,
    status: str | None,
) -> list[dict]:
    """The runs the options select (a warning on stderr when none)."""
    path = store if store is not None else default_target()
    if not is_url(path) and not Path(path).exists():
        raise ConfigError(
            f"no run store at {path}; record runs first (greentrain run/train) or pass --store"
        )
    with Store(path, read_only=True) as st:
        runs = select_runs(
            st, tags=parse_tags(tag), run_ids=run or None, sweep=sweep, status=status
        )
    if not runs:
        print(f"warning: no runs match the selection in {redact(path)}", file=sys.stderr)
    return runs


def _export_to_tracker(
    to: str,
    store: str | None,
    run: list[str],
    tag: list[str] | None,
    sweep: str | None,
    status: str | None,
    tracking_uri: str | None,
    project: str | None,
) -> None:
    """``--to mlflow|wandb``: each selected run into the tracker; one line per run on stderr."""
    if to not in TARGETS:
        raise ConfigError(f"--to {to!r}: use one of {', '.join(TARGETS)}")
    runs = _selected(store, run, tag, sweep, status)
    if not runs:
        return
    tracker = make_tracker(to, tracking_uri=tracking_uri, project=project)
    for run_record, (outcome, where) in zip(runs, export_runs(runs, tracker), strict=True):
        print(f"{outcome} {run_record.get('id')}: {where}", file=sys.stderr)

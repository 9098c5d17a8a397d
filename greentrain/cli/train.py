"""``greentrain train``: the paper's experiments as one metered command.

Every option maps 1:1 onto a field of :class:`greentrain.jobs.config.TrainConfig` (what trains)
or :class:`greentrain.run.RunOptions` (how it is metered and recorded); options left out take
the paper's value for the dataset/model (Tables 2-3).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import typer

from greentrain.cli._app import USAGE_ERRORS, app, usage_error_line
from greentrain.cli.options import budget_options, parse_tags, variant_options
from greentrain.cli.schedules import SCHEDULE_CHOICES, check_schedules
from greentrain.errors import ConfigError
from greentrain.run import CarbonOptions, RunOptions
from greentrain.run.budget import Budget

_RECIPE = "Recipe"
_SSPROP = "ssProp"
_RUN = "Execution"
_METER = "Metering and store"
_DDPM = "DDPM"
_BUDGET = budget_options(_METER)
_VARIANTS = variant_options(_SSPROP)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: write comma-separated numbers") from None


@app.command("train", no_args_is_help=False)
def train(
    model: str = typer.Option("resnet18", help="resnet18 | resnet26 | resnet50 | ddpm"),
    dataset: str = typer.Option(
        "digits",
        help="digits | mnist | fashion-mnist | cifar10 | cifar100 | celeba | imagenet | "
        "synthetic-cifar10",
    ),
    data_dir: str = typer.Option(
        "data", help="Dataset root (torchvision layout; ImageNet: train/ val/)."
    ),
    download: bool = typer.Option(
        False, "--download/--no-download", help="Download via torchvision."
    ),
    epochs: int = typer.Option(None, rich_help_panel=_RECIPE, help="Default: paper Table 2/3."),
    batch_size: int = typer.Option(None, rich_help_panel=_RECIPE, help="Default: paper Table 2/3."),
    lr: float = typer.Option(None, rich_help_panel=_RECIPE, help="Default 2e-4 (classification)."),
    betas: str = typer.Option("0.9,0.999", rich_help_panel=_RECIPE, help="Adam/AdamW betas."),
    weight_decay: float = typer.Option(
        None, rich_help_panel=_RECIPE, help="Default 0 (Adam) / 0.01 (AdamW)."
    ),
    seed: int = typer.Option(0, rich_help_panel=_RECIPE),
    val_fraction: float = typer.Option(None, rich_help_panel=_RECIPE, help="Default: paper split."),
    eval_batch_size: int = typer.Option(None, rich_help_panel=_RECIPE),
    workers: int = typer.Option(0, rich_help_panel=_RECIPE, help="DataLoader worker processes."),
    drop: float = typer.Option(0.0, rich_help_panel=_SSPROP, help="Target drop rate; 0 = dense."),
    schedule: str = typer.Option("bar", rich_help_panel=_SSPROP, help=SCHEDULE_CHOICES),
    period: int = typer.Option(
        None, rich_help_panel=_SSPROP, help="Default: 2 epochs for bar, else the whole run."
    ),
    period_unit: str = typer.Option("epoch", rich_help_panel=_SSPROP, help="epoch | iter"),
    warmup: int = typer.Option(0, rich_help_panel=_SSPROP, help="Dense epochs first."),
    selection: str = typer.Option("topk", rich_help_panel=_SSPROP, help="topk | random"),
    dims: str = typer.Option("channel", rich_help_panel=_SSPROP, help="channel | spatial | all"),
    sparse_linear: bool = typer.Option(
        False, "--sparse-linear/--no-sparse-linear", rich_help_panel=_SSPROP
    ),
    dropout: float = typer.Option(
        0.0, rich_help_panel=_SSPROP, help="nn.Dropout(P) after every conv (Table 6)."
    ),
    backend: str = _VARIANTS["backend"],
    reselect_every: int = _VARIANTS["reselect_every"],
    min_channels: int = _VARIANTS["min_channels"],
    device: str = typer.Option("auto", rich_help_panel=_RUN, help="auto | cpu | cuda | cuda:N"),
    deterministic: bool = typer.Option(
        False, "--deterministic/--no-deterministic", rich_help_panel=_RUN
    ),
    max_steps_per_epoch: int = typer.Option(
        None,
        "--max-steps-per-epoch",
        "--limit-train-batches",
        rich_help_panel=_RUN,
        help="Train at most N batches per epoch (smoke tests, CI).",
    ),
    limit_eval_batches: int = typer.Option(
        None, rich_help_panel=_RUN, help="Evaluate at most N batches."
    ),
    out: str = typer.Option(None, rich_help_panel=_RUN, help="Directory for checkpoints/samples."),
    resume: bool = typer.Option(
        False, "--resume/--no-resume", rich_help_panel=_RUN, help="Continue from OUT/last.pt."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", rich_help_panel=_RUN),
    compile: bool = typer.Option(
        False,
        "--compile/--no-compile",
        rich_help_panel=_RUN,
        help="torch.compile(fullgraph=True) the model: forward and ssProp's backward, one graph.",
    ),
    cuda_graphs: bool = typer.Option(
        False,
        "--cuda-graphs/--no-cuda-graphs",
        rich_help_panel=_RUN,
        help="Compile with CUDA graphs (reduce-overhead): one graph per drop-rate phase.",
    ),
    stop_after_epoch: int = typer.Option(
        None,
        "--stop-after-epoch",
        rich_help_panel=_RUN,
        help="Train only the first N epochs of the run, exactly as the full run would (a "
        "probe; sweep --dry-run-forecast uses it).",
    ),
    store: str = typer.Option(
        None, rich_help_panel=_METER, help="Run store (default ./reports/greentrain.db)."
    ),
    name: str = typer.Option(None, rich_help_panel=_METER),
    tag: list[str] = typer.Option(None, rich_help_panel=_METER, help="KEY=VALUE, repeatable."),
    meter: list[str] = typer.Option(
        None, rich_help_panel=_METER, help="Meter to use, repeatable (default: all available)."
    ),
    meter_self: bool = typer.Option(
        True, "--meter-self/--no-meter-self", rich_help_panel=_METER, hidden=True
    ),
    country: str = typer.Option(
        None, rich_help_panel=_METER, help="ISO country code for carbon intensity."
    ),
    region: str = typer.Option(None, rich_help_panel=_METER),
    carbon_intensity: float = typer.Option(
        None, rich_help_panel=_METER, help="gCO2e/kWh override."
    ),
    pue: float = typer.Option(
        1.0, rich_help_panel=_METER, help="Power usage effectiveness (>= 1)."
    ),
    budget_kwh: float = _BUDGET["budget_kwh"],
    budget_gco2: float = _BUDGET["budget_gco2"],
    budget_forecast: bool = _BUDGET["budget_forecast"],
    timesteps: int = typer.Option(
        None, rich_help_panel=_DDPM, help="Default 200 (MNIST-like) / 1000 (CelebA)."
    ),
    sample_steps: int = typer.Option(
        None, rich_help_panel=_DDPM, help="Reverse steps for samples/FID."
    ),
    base_channels: int = typer.Option(16, rich_help_panel=_DDPM),
    channel_mults: str = typer.Option("1,2,4", rich_help_panel=_DDPM),
    num_samples: int = typer.Option(64, rich_help_panel=_DDPM, help="Images in the sample grid."),
    fid_samples: int = typer.Option(500, rich_help_panel=_DDPM),
    fid_weights: str = typer.Option(
        None, rich_help_panel=_DDPM, help="Inception weights for the real FID."
    ),
) -> None:
    """Train a paper model (dense or ssProp), metered, with metrics per epoch in the store."""
    cfg, run = build_config(**locals())  # first statement: locals() holds exactly the options
    from greentrain.studies.launch import launch  # torch: loaded by this command only

    _print_summary(launch(cfg, run))


def build_config(*, resolved: bool = True, **opts: Any) -> tuple[Any, RunOptions | None]:
    """(TrainConfig, RunOptions) for the options of :func:`train` (ConfigError if bad; the run
    options are None with ``--no-meter-self``). ``resolved`` fills the paper's defaults for the
    dataset/model, else fields not given stay None."""
    check_schedules("--schedule", opts["schedule"])  # before torch loads
    from greentrain.jobs.config import TrainConfig  # imports ssprop, so torch
    from greentrain.jobs.recipes import resolve

    betas = _floats(opts.pop("betas"), "--betas")
    if len(betas) != 2:
        raise ConfigError(f"--betas {betas!r}: give two numbers, e.g. 0.9,0.999")
    opts["betas"] = (betas[0], betas[1])
    opts["channel_mults"] = tuple(int(v) for v in _floats(opts["channel_mults"], "--channel-mults"))
    meter = opts.pop("meter")
    run = RunOptions(
        store=opts.pop("store"),
        name=opts.pop("name"),
        tags=parse_tags(opts.pop("tag")),
        meters=list(meter) if meter else None,
        carbon=CarbonOptions(
            opts.pop("country"), opts.pop("region"), opts.pop("carbon_intensity"), opts.pop("pue")
        ),
        budget=Budget(opts.pop("budget_kwh"), opts.pop("budget_gco2"), opts.pop("budget_forecast")),
    )
    metered = opts.pop("meter_self")
    cfg = TrainConfig(**opts)
    return (resolve(cfg) if resolved else cfg), (run if metered else None)


def parse_train_options(args: list[str], *, resolved: bool = True) -> tuple[Any, RunOptions | None]:
    """Parse ``greentrain train`` flags (a list of strings) into (TrainConfig, RunOptions)
    (see :func:`build_config` for ``resolved``)."""
    captured: dict[str, Any] = {}

    def config_only(**opts: Any) -> None:
        captured["parsed"] = build_config(resolved=resolved, **opts)

    config_only.__signature__ = inspect.signature(train, eval_str=True)  # type: ignore[attr-defined]
    sub = typer.Typer(add_completion=False)
    sub.command()(config_only)
    try:
        typer.main.get_command(sub).main(args=list(args), standalone_mode=False)
    except USAGE_ERRORS as err:
        raise ConfigError(f"bad train option: {usage_error_line(err)}") from None
    return captured["parsed"]


def _print_summary(outcome: Any) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    result = outcome.result
    parts = []
    for key in ("best_test_acc", "final_test_acc"):
        value = getattr(result, key, None)
        if value is not None:
            parts.append(f"{key} {value:.4f}")
    fid = getattr(result, "fid", None)
    if isinstance(fid, dict) and fid.get("value") is not None:
        parts.append(f"{fid.get('metric', 'fid')} {fid['value']:.4g}")
    samples = getattr(result, "samples_png", None)
    if samples:
        parts.append(f"samples {samples}")
    if outcome.run_id:
        parts.append(f"run {outcome.run_id}")
    if parts:
        typer.echo("train: " + ", ".join(parts))

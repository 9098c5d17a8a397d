"""``greentrain flops``: backward FLOPs per iteration of a paper model, dense vs ssProp.

The figures come from :mod:`greentrain.jobs.flops_report` (analytic, paper Eq. 6-9; with
``--executed`` also counted by ``FlopCounterMode``); this module parses and prints.

``--steps-per-epoch`` (default 1) only matters for ``--period-unit iter`` (then it is
required: the number of batches of an epoch, e.g. 391 for CIFAR-10 at batch 128) and for run
totals; epoch-unit schedules give the same per-iteration mean for any value.
"""

from __future__ import annotations

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from greentrain.cli._app import app
from greentrain.cli.options import variant_options
from greentrain.cli.schedules import SCHEDULE_CHOICES, check_schedules
from greentrain.errors import ConfigError
from greentrain.record.jsonable import dumps

KIND_SHORT = {"batchnorm": "bn", "linear": "fc", "dropout": "drop", "conv_transpose": "convT"}

_VARIANTS = variant_options()


def parse_input(text: str) -> tuple[int, int, int, int]:
    """``"B,C,H,W"`` -> 4 positive ints, else ConfigError with the expected form."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or any(d < 1 for d in dims):
        raise ConfigError(f"--input must be B,C,H,W with 4 positive integers, got {text!r}")
    return dims  # type: ignore[return-value]


def human(flops: float | None) -> str:
    """``285.3 GFLOPs``-style text (None -> ``-``)."""
    if flops is None:
        return "-"
    for unit, scale in (("PFLOPs", 1e15), ("TFLOPs", 1e12), ("GFLOPs", 1e9), ("MFLOPs", 1e6)):
        if abs(flops) >= scale:
            return f"{flops / scale:.3f} {unit}"
    return f"{flops:,.0f} FLOPs"


def billions(flops: float) -> str:
    """``4,102.22``: billions of FLOPs with two decimals, as the paper's tables print them."""
    return f"{flops / 1e9:,.2f}"


def short(flops: float) -> str:
    """Compact ``1.234G``-style text for table cells."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(flops) >= scale:
            return f"{flops / scale:.4g}{unit}"
    return f"{flops:.4g}"


def print_report(report: dict, per_layer: bool) -> None:
    """Rich tables: totals, then per-layer rows on request."""
    console = Console()
    period = report["period"]
    sched = report["schedule"] + (f", period {period} {report['period_unit']}" if period else "")
    if report["warmup"]:
        sched += f", warmup {report['warmup']} epochs"
    title = (
        f"{report['model']} ({report['stem']} stem), input {'x'.join(map(str, report['input']))}"
        f" - backward FLOPs per iteration"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("FLOPs / iter", justify="right")
    table.add_column("B. / iter", justify="right")  # the paper's tables: billions, 2 decimals
    table.add_column("vs dense", justify="right")
    dense = report["dense_flops_per_iter"]

    def pct(v: float) -> str:
        return f"{100 * v / dense:.1f} %" if dense else "-"

    table.add_row("dense", human(dense), billions(dense), "100.0 %")
    if report["convention"] == "paper" and report["head_flops_per_iter"]:
        table.add_row(
            "classifier head, dense (linear; not in the paper's count)",
            human(report["head_flops_per_iter"]),
            billions(report["head_flops_per_iter"]),
            pct(report["head_flops_per_iter"]),
        )
    table.add_row(
        f"ssProp at drop {report['drop_rate']:g}",
        human(report["flops_at_drop_per_iter"]),
        billions(report["flops_at_drop_per_iter"]),
        pct(report["flops_at_drop_per_iter"]),
    )
    table.add_row(
        f"ssProp schedule mean ({sched}; {report['epochs']} epochs)",
        human(report["sparse_flops_per_iter"]),
        billions(report["sparse_flops_per_iter"]),
        pct(report["sparse_flops_per_iter"]),
    )
    ex = report["executed"]
    if ex:
        table.add_row(
            "executed dense (FlopCounterMode)",
            human(ex["dense_backward_flops"]),
            billions(ex["dense_backward_flops"]),
            pct(ex["dense_backward_flops"]),
        )
        table.add_row(
            f"executed at drop {ex['drop_rate']:g} (FlopCounterMode)",
            human(ex["sparse_backward_flops"]),
            billions(ex["sparse_backward_flops"]),
            pct(ex["sparse_backward_flops"]),
        )
    console.print(table)
    console.print(f"mean drop rate over the schedule: {report['mean_drop_rate']:.3f}")
    if report["total_dense_flops"] is not None:
        console.print(
            f"run totals ({report['epochs']} x {report['steps_per_epoch']} iterations): dense "
            f"{human(report['total_dense_flops'])}, ssProp {human(report['total_sparse_flops'])}"
        )
    if ex:
        console.print(
            f"executed figures measured on a batch of {ex['measured_batch']}, scaled to "
            f"{ex['scaled_to_batch']}; they omit BatchNorm and the first conv's grad_input"
        )
    if per_layer:
        console.print(
            "* = sparse layer (ssprop); ( ) = not in the paper's count; output = C x H x W; "
            "mean = schedule mean"
        )
    if per_layer:
        layers = Table(title="per layer (FLOPs per iteration)", box=box.SIMPLE)
        layers.add_column("layer", no_wrap=True)
        layers.add_column("kind", no_wrap=True)
        for col in ("output", "dense", "at drop", "mean"):
            layers.add_column(col, justify="right", no_wrap=True)
        for row in report["layers"]:
            layers.add_row(
                row["name"] if row["counted"] else f"({row['name']})",
                KIND_SHORT.get(row["kind"], row["kind"]) + ("*" if row["sparse"] else ""),
                "x".join(map(str, row["output_shape"][1:])),
                short(row["dense_flops"]),
                short(row["flops_at_drop"]),
                short(row["sparse_flops_per_iter"]),
            )
        console.print(layers)


@app.command("flops")
def flops_cmd(
    model: str = typer.Option("resnet18", "--model", help="resnet18, resnet26 or resnet50."),
    stem: str = typer.Option(
        "cifar", "--stem", help="cifar (3x3 stride-1 conv, no max-pool; the paper's) or imagenet."
    ),
    input_shape: str = typer.Option(
        "128,3,32,32", "--input", help="Batch input shape B,C,H,W (C sets the input channels)."
    ),
    num_classes: int = typer.Option(10, "--num-classes", help="Classifier outputs."),
    drop: float = typer.Option(0.8, "--drop", help="Target drop rate D in [0, 1)."),
    schedule: str = typer.Option(
        "bar", "--schedule", help=f"Drop-rate schedule: {SCHEDULE_CHOICES}."
    ),
    period: int = typer.Option(
        None,
        "--period",
        help="Schedule period in --period-unit units (bar default: 2 epochs; else whole run).",
    ),
    period_unit: str = typer.Option("epoch", "--period-unit", help="epoch or iter."),
    epochs: int = typer.Option(50, "--epochs", help="Epochs of the run the mean is taken over."),
    steps_per_epoch: int = typer.Option(
        None,
        "--steps-per-epoch",
        help="Iterations per epoch (default 1; required with --period-unit iter).",
    ),
    warmup: int = typer.Option(0, "--warmup", help="Dense warm-up epochs before the schedule."),
    per_layer: bool = typer.Option(False, "--per-layer", help="Also print one row per layer."),
    executed: bool = typer.Option(
        False, "--executed", help="Also count one real CPU backward with FlopCounterMode."
    ),
    convention: str = typer.Option(
        "paper",
        "--convention",
        help="paper: convolutions, BatchNorm and Dropout, as the paper counts (its tables; "
        "the head shown apart); all: the linear head too.",
    ),
    reselect_every: int = _VARIANTS["reselect_every"],
    min_channels: int = _VARIANTS["min_channels"],
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> int:
    """Backward FLOPs per iteration of a paper model: dense vs ssProp under a drop schedule."""
    check_schedules("--schedule", schedule)
    from greentrain.jobs.flops_report import flops_report  # torch: loaded by this command only

    report = flops_report(
        model=model,
        stem=stem,
        input_shape=parse_input(input_shape),
        num_classes=num_classes,
        drop=drop,
        schedule=schedule,
        period=period,
        period_unit=period_unit,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup=warmup,
        executed=executed,
        convention=convention,
        reselect_every=reselect_every,
        min_channels=min_channels,
    )
    if as_json:
        print(dumps(report))
    else:
        print_report(report, per_layer)
    return 0

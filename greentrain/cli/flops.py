"""``greentrain flops``: backward FLOPs per iteration of a paper model, dense vs ssProp.

Analytic figures follow the paper (Eq. 6 convolution, Eq. 7 BatchNorm, Eq. 8 Dropout, Eq. 9
sparse convolution with the selection's summation; see ``ssprop.flops``); every Conv2d is made
sparse (``ssprop.convert``), the classifier head stays dense. The model is built on the meta
device, so even ResNet-50 at 224x224 is instant and allocates nothing.

- ``dense_flops_per_iter``: every layer dense.
- ``sparse_flops_per_iter``: the mean over the schedule's iterations (``--epochs`` x
  ``--steps-per-epoch``), each iteration at the drop rate the schedule gives it.
- ``--executed`` also runs one real forward/backward on the CPU under
  ``torch.utils.flop_counter.FlopCounterMode`` with all convolutions dense and then at
  ``--drop``: what the kernels really did (2 FLOPs per MAC of every GEMM, no BatchNorm or bias
  sums; the first convolution's grad_input is not computed). It runs on ``min(B, 2)`` samples
  and scales by ``B / b`` (every counted FLOP is linear in the batch size).

``--steps-per-epoch`` (default 1) only matters for ``--period-unit iter`` (then it is
required: the number of batches of an epoch, e.g. 391 for CIFAR-10 at batch 128) and for run
totals; epoch-unit schedules give the same per-iteration mean for any value.
"""

from __future__ import annotations

import json
import math

import typer

from greentrain.cli._app import app, fail

SCHEDULES = ("constant", "linear", "cosine", "bar")
DEFAULT_BAR_PERIOD = 2  # epochs: the paper's headline setting
KIND_SHORT = {"batchnorm": "bn", "linear": "fc", "dropout": "drop", "conv_transpose": "convT"}


def parse_input(text: str) -> tuple[int, int, int, int]:
    """``"B,C,H,W"`` -> 4 positive ints, else ValueError with the expected form."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 4 or any(d < 1 for d in dims):
        raise ValueError(f"--input must be B,C,H,W with 4 positive integers, got {text!r}")
    return dims  # type: ignore[return-value]


def human(flops: float | None) -> str:
    """``285.3 GFLOPs``-style text (None -> ``-``)."""
    if flops is None:
        return "-"
    for unit, scale in (("PFLOPs", 1e15), ("TFLOPs", 1e12), ("GFLOPs", 1e9), ("MFLOPs", 1e6)):
        if abs(flops) >= scale:
            return f"{flops / scale:.3f} {unit}"
    return f"{flops:,.0f} FLOPs"


def short(flops: float) -> str:
    """Compact ``1.234G``-style text for table cells."""
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(flops) >= scale:
            return f"{flops / scale:.4g}{unit}"
    return f"{flops:.4g}"


def flops_report(
    *,
    model: str,
    stem: str,
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    drop: float,
    schedule: str,
    period: int | None,
    period_unit: str,
    epochs: int,
    steps_per_epoch: int | None,
    warmup: int,
    executed: bool,
) -> dict:
    """Compute the ``--json`` object. Raises ConfigError/ValueError for bad values."""
    import torch

    from greentrain.errors import ConfigError
    from greentrain.jobs.models import build_model
    from ssprop import flops as F
    from ssprop import schedulers
    from ssprop.convert import convert

    if not 0.0 <= drop < 1.0:
        raise ConfigError(f"--drop must be in [0, 1) (0 = dense), got {drop}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown --schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    if period_unit == "iter" and steps_per_epoch is None:
        raise ConfigError(
            "--period-unit iter needs --steps-per-epoch (batches per epoch, e.g. 391 for "
            "CIFAR-10 at batch 128)"
        )
    spe = 1 if steps_per_epoch is None else steps_per_epoch
    if spe < 1:
        raise ConfigError(f"--steps-per-epoch must be >= 1, got {spe}")
    if period is None and schedule == "bar":
        period = DEFAULT_BAR_PERIOD if period_unit == "epoch" else None
    batch, channels, height, width = input_shape

    with torch.device("meta"):
        net = build_model(model, num_classes=num_classes, in_channels=channels, stem=stem)
    convert(net, drop_rate=drop)
    try:
        sched = schedulers.build(
            schedule,
            None,
            drop,
            total_steps=epochs * spe,
            steps_per_epoch=spe,
            period=period,
            period_unit=period_unit,
            warmup=warmup,
        )
        mf = F.analyze(net, input_shape)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    dense = mf.dense_flops
    sparse_mean = F.schedule_mean_flops(mf, sched)
    layer_means = F.schedule_layer_flops(mf, sched)
    iterations = epochs * spe
    layers = []
    for row, mean in zip(mf.layers, layer_means, strict=True):
        item = row.to_dict()
        item["flops_at_drop"] = row.flops_at(drop if row.sparse else 0.0)
        item["sparse_flops_per_iter"] = mean
        layers.append(item)
    report = {
        "model": model,
        "stem": stem,
        "input": list(input_shape),
        "num_classes": num_classes,
        "drop_rate": drop,
        "schedule": schedule,
        "period": period,
        "period_unit": period_unit,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "warmup": warmup,
        "dense_flops_per_iter": dense,
        "sparse_flops_per_iter": sparse_mean,
        "flops_at_drop_per_iter": mf.flops_at(drop),
        "mean_drop_rate": sched.mean_rate(),
        "saving_fraction": 1.0 - sparse_mean / dense if dense else None,
        "total_dense_flops": dense * iterations if steps_per_epoch is not None else None,
        "total_sparse_flops": sparse_mean * iterations if steps_per_epoch is not None else None,
        "by_kind": mf.by_kind(),
        "layers": layers,
        "executed": None,
        "method": "analytic backward FLOPs, ssProp paper Eq. 6-9 (1 FLOP per add/mul)",
    }
    if executed:
        report["executed"] = executed_report(
            model, stem, num_classes, (batch, channels, height, width), drop
        )
    return report


def executed_report(
    model: str, stem: str, num_classes: int, input_shape: tuple[int, int, int, int], drop: float
) -> dict:
    """FlopCounterMode backward FLOPs of one real iteration, dense and at ``drop``."""
    import torch

    from greentrain.jobs.models import build_model
    from ssprop import flops as F
    from ssprop.convert import convert, sparse_modules

    batch, channels, height, width = input_shape
    measured = min(batch, 2)
    torch.manual_seed(0)
    net = build_model(model, num_classes=num_classes, in_channels=channels, stem=stem)
    convert(net, drop_rate=drop)
    net.train()
    x = torch.randn(measured, channels, height, width)
    counts = {}
    for label, rate in (("dense", 0.0), ("sparse", drop)):
        for _, layer in sparse_modules(net):
            layer.drop_rate = rate
        counts[label] = F.executed_backward_flops(net, x) * batch // measured
        net.zero_grad(set_to_none=True)
    return {
        "dense_backward_flops": counts["dense"],
        "sparse_backward_flops": counts["sparse"],
        "drop_rate": drop,
        "measured_batch": measured,
        "scaled_to_batch": batch,
        "method": "torch.utils.flop_counter.FlopCounterMode, one CPU backward, 2 FLOPs/MAC",
    }


def print_report(report: dict, per_layer: bool) -> None:
    """Rich tables: totals, then per-layer rows on request."""
    from rich.console import Console
    from rich.table import Table

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
    table.add_column("vs dense", justify="right")
    dense = report["dense_flops_per_iter"]

    def pct(v: float) -> str:
        return f"{100 * v / dense:.1f} %" if dense else "-"

    table.add_row("dense", human(dense), "100.0 %")
    table.add_row(
        f"ssProp at drop {report['drop_rate']:g}",
        human(report["flops_at_drop_per_iter"]),
        pct(report["flops_at_drop_per_iter"]),
    )
    table.add_row(
        f"ssProp schedule mean ({sched}; {report['epochs']} epochs)",
        human(report["sparse_flops_per_iter"]),
        pct(report["sparse_flops_per_iter"]),
    )
    ex = report["executed"]
    if ex:
        table.add_row(
            "executed dense (FlopCounterMode)",
            human(ex["dense_backward_flops"]),
            pct(ex["dense_backward_flops"]),
        )
        table.add_row(
            f"executed at drop {ex['drop_rate']:g} (FlopCounterMode)",
            human(ex["sparse_backward_flops"]),
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
        console.print("* = sparse layer (ssprop); output = C x H x W; mean = schedule mean")
    if per_layer:
        from rich import box

        layers = Table(title="per layer (FLOPs per iteration)", box=box.SIMPLE)
        layers.add_column("layer", no_wrap=True)
        layers.add_column("kind", no_wrap=True)
        for col in ("output", "dense", "at drop", "mean"):
            layers.add_column(col, justify="right", no_wrap=True)
        for row in report["layers"]:
            layers.add_row(
                row["name"],
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
        "bar", "--schedule", help="constant, linear, cosine or bar (drop-rate schedule)."
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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> int:
    """Backward FLOPs per iteration of a paper model: dense vs ssProp under a drop schedule."""
    from greentrain.errors import ConfigError

    if period_unit not in ("epoch", "iter"):
        fail(f"--period-unit must be 'epoch' or 'iter', got {period_unit!r}")
    try:
        shape = parse_input(input_shape)
        report = flops_report(
            model=model,
            stem=stem,
            input_shape=shape,
            num_classes=num_classes,
            drop=drop,
            schedule=schedule,
            period=period,
            period_unit=period_unit,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            warmup=warmup,
            executed=executed,
        )
    except (ConfigError, ValueError) as err:
        fail(str(err).splitlines()[0])
    if as_json:
        print(json.dumps(report, default=_jsonable))
    else:
        print_report(report, per_layer)
    return 0


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)

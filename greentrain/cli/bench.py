"""``greentrain bench ...``: speed/energy benchmarks. ``bench ssprop`` compares ssProp to dense."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from greentrain.cli._app import app
from greentrain.cli.options import variant_options
from greentrain.errors import ConfigError

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: ssProp vs dense step time, backward time and joules per step.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

_VARIANTS = variant_options()


@bench_app.command("ssprop")
def bench_ssprop(
    model: str = typer.Option(
        "resnet18", "--model", help="resnet18/26/50, or ddpm (the paper's DDPM UNet)."
    ),
    unet_base: int = typer.Option(
        None, "--unet-base", help="ddpm: UNet base channels (default: the paper's, 128 at 64x64)."
    ),
    stem: str = typer.Option("cifar", "--stem", help="cifar (3x3 stride-1 stem) or imagenet."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per step."),
    input_shape: str = typer.Option("3,32,32", "--input", help="One image's shape C,H,W."),
    drops: str = typer.Option("0,0.4,0.8", "--drops", help="Drop rates of the sparse variants."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or bfloat16 (autocast)."),
    channels_last: bool = typer.Option(
        False, "--channels-last", help="Models and inputs in channels_last memory format."
    ),
    other_layout: bool = typer.Option(
        True,
        "--other-layout/--no-other-layout",
        help="Also time dense in the other memory layout (the fastest dense is the faster).",
    ),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile every variant."),
    steps: int = typer.Option(20, "--steps", help="Timed rounds (one step of every variant)."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed rounds first."),
    schedule_check: bool = typer.Option(
        False, "--schedule-check", help="Also time the paper's bar schedule (period 2, drop 0.8)."
    ),
    layers: bool = typer.Option(
        True, "--layers/--no-layers", help="Per-layer conv backward table."
    ),
    phases: bool = typer.Option(
        False,
        "--phases",
        help="Also time forward, backward and optimizer step alone (joules on CUDA).",
    ),
    layer_reps: int = typer.Option(
        None, "--layer-reps", help="Repetitions per layer (default: --steps)."
    ),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam (paper's) or sgd."),
    backend: str = _VARIANTS["backend"],
    reselect_every: int = _VARIANTS["reselect_every"],
    min_channels: int = _VARIANTS["min_channels"],
    seed: int = typer.Option(0, "--seed", help="Seed of the shared initial weights and batch."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's)."),
    compile_mode: str = typer.Option(
        "default",
        "--compile-mode",
        help="torch.compile mode with --compile: default, reduce-overhead (CUDA graphs), "
        "max-autotune.",
    ),
    cuda_graphs: bool = typer.Option(
        False,
        "--cuda-graphs",
        help="Compile every variant with CUDA graphs (reduce-overhead, fullgraph); CUDA only.",
    ),
    fused_optimizer: bool = typer.Option(
        None,
        "--fused-optimizer/--no-fused-optimizer",
        help="Fused optimizer for every variant (default: fused where torch has one).",
    ),
    graph_replays: int = typer.Option(
        20, "--graph-replays", help="CUDA: graph replays per timed layer repetition."
    ),
    energy_rounds: int = typer.Option(
        5, "--energy-rounds", help="GPU: rounds of energy blocks (one block per variant each)."
    ),
    energy_block_s: float = typer.Option(
        1.0, "--energy-block-s", help="GPU: seconds one energy block lasts at dense speed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (see README)."),
    store: str = typer.Option(None, "--store", help="Store file (default $GREENTRAIN_STORE)."),
    meter: list[str] = typer.Option(
        None, "--meter", help="Meter(s) for the recorded run's whole energy (default: all)."
    ),
    no_record: bool = typer.Option(False, "--no-record", help="Do not record a run."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines on stderr."),
) -> None:
    """Time ssProp against dense in one process: step, backward, J/step, per-layer, ratios."""
    from greentrain.bench import (
        BenchConfig,
        parse_drops,
        parse_input_shape,
        print_rich,
        run_and_record,
        run_ssprop_bench,
        validate,
    )

    cfg = validate(
        BenchConfig(
            model=model,
            unet_base=unet_base,
            stem=stem,
            batch_size=batch_size,
            input_shape=parse_input_shape(input_shape),
            drops=parse_drops(drops),
            device=device,
            dtype=dtype,
            channels_last=channels_last,
            other_layout=other_layout,
            compile=compile_,
            steps=steps,
            warmup=warmup,
            schedule_check=schedule_check,
            per_layer=layers,
            phases=phases,
            layer_reps=layer_reps,
            optimizer=optimizer,
            backend=backend,
            reselect_every=reselect_every,
            min_channels=min_channels,
            seed=seed,
            threads=threads,
            compile_mode=compile_mode,
            cuda_graphs=cuda_graphs,
            fused_optimizer=fused_optimizer,
            graph_replays=graph_replays,
            energy_rounds=energy_rounds,
            energy_block_s=energy_block_s,
        )
    )

    started = time.monotonic()

    def log(message: str) -> None:  # seconds since start: where the time went (compiles)
        if not quiet:
            print(f"[bench {time.monotonic() - started:6.1f}s] {message}", file=sys.stderr,
                  flush=True)  # fmt: skip

    if no_record:
        result = run_ssprop_bench(cfg, log=log)
    else:
        result = run_and_record(cfg, store=store, meters=meter or None, log=log)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_rich(result)


@bench_app.command("where")
def bench_where(
    files: list[str] = typer.Argument(..., help="JSON results of `greentrain bench ssprop`."),
    drop: float = typer.Option(0.8, "--drop", help="The sparse variant's drop rate."),
    markdown: bool = typer.Option(False, "--markdown", help="Print Markdown (for READMEs)."),
) -> None:
    """Where ssProp saves energy and where it does not: one row per bench result."""
    from greentrain.bench.where import HEADERS, cells, row
    from greentrain.bench.where import markdown as to_markdown

    results = []
    for name in files:
        try:
            data = json.loads(Path(name).read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read bench result {name}: {err}") from None
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(
            "greentrain.bench.ssprop/"
        ):
            raise ConfigError(f"{name} is not a `greentrain bench ssprop --json` result")
        results.append(data)
    if markdown:
        print(to_markdown(results, drop), end="")
        return
    table = Table(title="Where ssProp saves energy", title_justify="left")
    for h in HEADERS:
        table.add_column(escape(h))
    for r in results:
        table.add_row(*(escape(c) for c in cells(row(r, drop))))
    Console().print(table)

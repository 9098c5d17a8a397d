"""``greentrain demo``: dense vs ssProp ResNet-18 on the offline digits data, metered, compared.

Two runs of the classification job on scikit-learn's 1,797 real 8x8 handwritten digits (no
download): the dense baseline and ssProp with the paper's setting (bar schedule, drop rate 0.8,
period 2 epochs: dense one epoch, 80% of the output-gradient channels dropped the next). Both
are metered in-process (``greentrain.run.track``) and stored; their comparison rows
(:func:`greentrain.report.runs.comparison_row`) hold test accuracy, wall time, energy (kWh, with
the meter that measured it; estimates are marked), gCO2e, analytic backward FLOPs per iteration
and accuracy per kWh.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from greentrain import meters as meter_registry
from greentrain.jobs.config import TrainConfig
from greentrain.report.runs import comparison_row
from greentrain.run import RunOptions
from greentrain.store import Store
from greentrain.studies.launch import launch

DEFAULT_EPOCHS = 2  # ssProp bar period 2: one dense + one sparse epoch (mean drop 0.4)


def demo_configs(
    *,
    epochs: int = DEFAULT_EPOCHS,
    store: str | None = None,
    device: str = "auto",
    limit_batches: int | None = None,
    meters: list[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[tuple[TrainConfig, RunOptions]]:
    """The dense and the ssProp run of the demo (same seed, data and recipe)."""
    demo_id = uuid.uuid4().hex[:8]
    base = TrainConfig(
        model="resnet18",
        dataset="digits",
        epochs=epochs,
        seed=seed,
        device=device,
        max_steps_per_epoch=limit_batches,
        limit_eval_batches=limit_batches,
        progress=progress,
    )
    sparse = dataclasses.replace(base, drop=0.8, schedule="bar", period=2, period_unit="epoch")
    return [
        (
            cfg,
            RunOptions(
                store=store,
                meters=meters,
                name=f"demo-{mode}-resnet18-digits",
                tags={"demo": demo_id, "mode": mode},
            ),
        )
        for mode, cfg in (("dense", dataclasses.replace(base, drop=0.0)), ("ssprop", sparse))
    ]


def warm_up(configs: list[TrainConfig], meter_names: list[str] | None) -> None:
    """Pay one-time start-up costs before the first measured run, so run order cannot bias
    the comparison.

    The first start of the meters costs seconds (CodeCarbon detects the hardware), and the
    first training steps of a process are slow (kernel selection, allocator growth). Whichever
    run comes first would carry those costs. So this starts and stops the meters once and
    trains each configuration for two unrecorded steps, with the sparse one at its target rate
    so the sparse backward runs too.
    """
    meter_registry.warm_up(meter_names or meter_registry.DEFAULT_METERS)
    for cfg in configs:
        launch(
            dataclasses.replace(
                cfg,
                epochs=1,
                schedule="constant",
                max_steps_per_epoch=2,
                limit_eval_batches=1,
                progress=False,
                out=None,
            )
        )


def run_demo(
    *,
    epochs: int = DEFAULT_EPOCHS,
    store: str | None = None,
    device: str = "auto",
    limit_batches: int | None = None,
    meters: list[str] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train, meter and store both demo runs; return their comparison rows."""
    runs = demo_configs(
        epochs=epochs,
        store=store,
        device=device,
        limit_batches=limit_batches,
        meters=meters,
        progress=progress,
    )
    echo("demo: warming up (meters and first steps; nothing recorded) ...")
    warm_up([cfg for cfg, _ in runs], meters)
    rows = []
    for cfg, run in runs:
        label = "dense" if cfg.drop == 0 else "ssProp (bar, drop 0.8, period 2 epochs)"
        echo(f"demo: training ResNet-18 on digits, {label}, {cfg.epochs} epochs ...")
        outcome = launch(cfg, run)
        if outcome.run_id is None:  # pragma: no cover - launch always records on rank 0
            continue
        with Store(store) as st:
            rows.append(comparison_row(st.get_run(outcome.run_id)))
    return rows

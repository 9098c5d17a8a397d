"""``greentrain demo``: dense vs ssProp ResNet-18 on the offline digits data, metered, compared.

Two runs of the classification job on scikit-learn's 1,797 real 8x8 handwritten digits (no
download): the dense baseline and ssProp with the paper's setting (bar schedule, drop rate 0.8,
period 2 epochs: dense one epoch, 80% of the output-gradient channels dropped the next). Both
are metered in-process (``greentrain.harness.track``) and stored; the comparison table shows
test accuracy, wall time, energy (kWh, with the meter that measured it; estimates are marked),
gCO2e, analytic backward FLOPs per iteration and accuracy per kWh.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from greentrain.jobs.config import TrainConfig

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
) -> list[TrainConfig]:
    """The dense and the ssProp config of the demo (same seed, data and recipe)."""
    demo_id = uuid.uuid4().hex[:8]
    base = TrainConfig(
        model="resnet18",
        dataset="digits",
        epochs=epochs,
        seed=seed,
        device=device,
        store=store,
        meters=meters,
        max_steps_per_epoch=limit_batches,
        limit_eval_batches=limit_batches,
        progress=progress,
        tags={"demo": demo_id},
    )
    dense = dataclasses.replace(
        base, drop=0.0, name="demo-dense-resnet18-digits", tags={**base.tags, "mode": "dense"}
    )
    sparse = dataclasses.replace(
        base,
        drop=0.8,
        schedule="bar",
        period=2,
        period_unit="epoch",
        name="demo-ssprop-resnet18-digits",
        tags={**base.tags, "mode": "ssprop"},
    )
    return [dense, sparse]


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """One comparison row from a stored run object (values None when not measured)."""
    metrics = run.get("metrics") or []
    per_epoch = [m for m in metrics if m.get("epoch") is not None]
    final = next((m for m in reversed(metrics) if "final_test_acc" in m), {})
    acc = final.get("final_test_acc")
    if acc is None and per_epoch:
        acc = per_epoch[-1].get("test_acc")
    flops = [m["backward_flops_per_iter"] for m in per_epoch if "backward_flops_per_iter" in m]
    energy = run.get("energy") or {}
    sources = sorted(
        {d.get("source") for d in energy.values() if isinstance(d, dict) and d.get("source")}
    )
    estimated = any(isinstance(d, dict) and d.get("estimated") for d in energy.values())
    kwh = run.get("energy_kwh")
    return {
        "name": run.get("name"),
        "id": run.get("id"),
        "mode": (run.get("tags") or {}).get("mode", ""),
        "test_acc": acc,
        "best_test_acc": final.get("best_test_acc"),
        "duration_s": run.get("duration_s"),
        "energy_kwh": kwh,
        "energy_sources": sources,
        "estimated": estimated,
        "co2_g": run.get("co2_g"),
        "backward_flops_per_iter": sum(flops) / len(flops) if flops else None,
        "acc_per_kwh": acc / kwh if acc is not None and kwh else None,
        "mean_drop_rate": (
            sum(m.get("drop_rate", 0.0) for m in per_epoch) / len(per_epoch) if per_epoch else None
        ),
    }


def _fmt(value: Any, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def render_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as plain text (a fixed-width table + notes), ready to print."""
    headers = [
        "run",
        "test acc",
        "time (s)",
        "energy (kWh)",
        "gCO2e",
        "bwd GFLOPs/iter",
        "acc per kWh",
    ]
    table = [headers]
    for r in rows:
        mark = "*" if r["estimated"] else ""
        table.append(
            [
                r["mode"] or r["name"],
                _fmt(r["test_acc"], ".4f"),
                _fmt(r["duration_s"], ".1f"),
                _fmt(r["energy_kwh"], ".6f") + mark,
                _fmt(r["co2_g"], ".3f"),
                _fmt(
                    None
                    if r["backward_flops_per_iter"] is None
                    else r["backward_flops_per_iter"] / 1e9,
                    ".3f",
                ),
                _fmt(r["acc_per_kwh"], ",.0f"),
            ]
        )
    if len(rows) == 2:
        dense, sparse = rows

        def ratio(key: str) -> str:
            a, b = dense.get(key), sparse.get(key)
            return f"{b / a:.2f}x" if a and b is not None else "n/a"

        table.append(
            [
                "ssprop/dense",
                ratio("test_acc"),
                ratio("duration_s"),
                ratio("energy_kwh"),
                ratio("co2_g"),
                ratio("backward_flops_per_iter"),
                ratio("acc_per_kwh"),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0 or (len(rows) == 2 and n == len(rows)):
            lines.append("  ".join("-" * w for w in widths))
    sources = sorted({s for r in rows for s in r["energy_sources"]})
    lines.append("")
    lines.append("energy source: " + (", ".join(sources) if sources else "none measured"))
    if any(r["estimated"] for r in rows):
        lines.append("* estimated (no hardware energy counter on this machine; a model of power)")
    lines.append("ids: " + ", ".join(f"{r['mode']} {r['id']}" for r in rows))
    return "\n".join(lines)


def warm_up(configs: list[TrainConfig], meters: list[str] | None) -> None:
    """Pay one-time start-up costs before the first measured run, so run order cannot bias
    the comparison.

    The first start of the meters costs seconds (CodeCarbon detects the hardware), and the
    first training steps of a process are slow (kernel selection, allocator growth). Whichever
    run comes first would carry those costs. So this starts and stops the meters once and
    trains each configuration for two unrecorded steps, with the sparse one at its target rate
    so the sparse backward runs too.
    """
    from greentrain.harness import MeterSet
    from greentrain.jobs.distributed import launch
    from greentrain.meters import DEFAULT_METERS

    meter_set = MeterSet(list(meters) if meters else list(DEFAULT_METERS))
    meter_set.start()
    meter_set.stop()
    for cfg in configs:
        launch(
            dataclasses.replace(
                cfg,
                meter=False,
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
    from greentrain.jobs.distributed import launch
    from greentrain.store import Store

    rows = []
    configs = demo_configs(
        epochs=epochs,
        store=store,
        device=device,
        limit_batches=limit_batches,
        meters=meters,
        progress=progress,
    )
    echo("demo: warming up (meters and first steps; nothing recorded) ...")
    warm_up(configs, meters)
    for cfg in configs:
        label = "dense" if cfg.drop == 0 else "ssProp (bar, drop 0.8, period 2 epochs)"
        echo(f"demo: training ResNet-18 on digits, {label}, {cfg.epochs} epochs ...")
        outcome = launch(cfg)
        if outcome.run_id is None:  # pragma: no cover - launch always records on rank 0
            continue
        st = Store(store)
        try:
            rows.append(summarize(st.get_run(outcome.run_id)))
        finally:
            st.close()
    return rows

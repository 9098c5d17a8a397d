"""Run the benchmark inside a greentrain run, so its result lands in the store like any run.

The run's config is ``{"job": "bench", "bench": "ssprop", ...settings}``; one metrics row per
variant (``step`` = variant index) carries the headline ratios (see :func:`summary_rows`).
"""

from __future__ import annotations

from greentrain import client
from greentrain.bench.config import BenchConfig
from greentrain.bench.ssprop_bench import run_ssprop_bench
from greentrain.bench.variants import Log, noop
from greentrain.run import track


def _metrics(row: dict) -> dict:
    """Numeric fields of a summary row (None-valued measurements are left out, not zeroed)."""
    return {
        k: v
        for k, v in row.items()
        if k not in ("variant", "kind") and isinstance(v, (int, float)) and v is not None
    }


def run_and_record(
    cfg: BenchConfig,
    *,
    store: str | None = None,
    meters: list[str] | None = None,
    log: Log = noop,
) -> dict:
    """Run :func:`run_ssprop_bench` under :func:`greentrain.run.track` and log its ratios.

    ``store``: store file (None: ``$GREENTRAIN_STORE`` or ``./reports/greentrain.db``);
    ``meters``: meter names for the whole-run energy (None: greentrain's defaults).
    Returns the result with ``run_id`` set.
    """
    name = f"bench-ssprop-{cfg.model}"
    tags = {"job": "bench", "bench": "ssprop"}
    with track(name, store=store, tags=tags, meters=meters) as run:
        settings = {k: v for k, v in cfg.to_dict().items() if k != "extra"}
        client.config(job="bench", bench="ssprop", **settings)
        result = run_ssprop_bench(cfg, log=log)
        # metrics rows carry numbers only; row ``step`` i is variant ``bench_variants[i]``
        client.config(bench_variants=[row["variant"] for row in result["summary"]])
        for index, row in enumerate(result["summary"]):
            client.log(step=index, **_metrics(row))
        if result["schedule"]:
            client.log(
                step=len(result["summary"]),
                schedule_step_time_ratio=result["schedule"]["mean_step_time_ratio"],
            )
        result["run_id"] = run.id
    return result

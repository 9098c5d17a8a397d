"""``greentrain bench where FILE...``: the table of where ssProp saves energy, from saved
``greentrain bench ssprop --json`` results (and the GPU study's ``where-ssprop-saves.md``).

The table, its verdict and how to read it are :mod:`greentrain.report.where`'s (the app builds
the same rows from recorded bench runs); this module only takes each variant's headline ratio
and its confidence interval out of a result (:mod:`greentrain.bench.stats`: the median of paired
per-round ratios, the mean for the bar schedule), against the *fastest* dense configuration, or
for drop 0 against dense in the result's own memory layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greentrain.bench.stats import headline, headline_interval
from greentrain.report import where
from greentrain.report.where import HEADERS, cells, figure, verdict

__all__ = ["HEADERS", "cells", "markdown", "row", "verdict"]


def _figure(variant: Mapping[str, Any] | None, metric: str, baseline: str) -> dict:
    if not variant:
        return figure(None)
    table = "ratios_vs_fastest_dense" if baseline == "fastest" else "ratios"
    ratio = (variant.get(table) or {}).get(metric)
    if not isinstance(ratio, Mapping):
        return figure(None)
    schedule = variant.get("kind") == "schedule"
    if schedule and "mean" not in ratio:  # results before the schedule's ratio was its mean
        return figure(None)
    interval = headline_interval(dict(ratio), schedule) or {}
    return figure(
        headline(dict(ratio), schedule),
        interval.get("low"),
        interval.get("high"),
        interval.get("level"),
    )


def _variant(result: Mapping[str, Any], pick) -> Mapping[str, Any] | None:
    return next((v for v in result.get("variants", []) if pick(v)), None)


def row(result: Mapping[str, Any], drop: float = 0.8) -> dict[str, Any]:
    """One table row of a bench result (the sparse variant at ``drop``)."""
    picks = {
        "sparse": lambda v: v.get("kind") == "sparse" and v.get("drop_rate") == drop,
        "bar": lambda v: v.get("kind") == "schedule",
        "zero": lambda v: v.get("kind") == "sparse" and v.get("drop_rate") == 0.0,
    }
    figures = {
        key: {m: _figure(_variant(result, pick), m, where.BASELINE[key]) for m in metrics}
        for key, pick in picks.items()
        for metrics in (where.FIGURES[key],)
    }
    device = (result.get("env") or {}).get("device_name", "?")
    return where.make_row(result.get("config", {}), device, figures, drop)


def markdown(results: Sequence[Mapping[str, Any]], drop: float = 0.8) -> str:
    """The table in Markdown, with how to read it."""
    return where.markdown([row(r, drop) for r in results], drop)

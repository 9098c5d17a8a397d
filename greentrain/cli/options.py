"""Parsing shared by several commands' options."""

from __future__ import annotations

from typing import Any

import typer

from greentrain.errors import ConfigError
from greentrain.record.vocabulary import STATUSES

BUDGET_KWH_HELP = "Stop the run cleanly when it has used this many kWh (exit code 124)."
BUDGET_GCO2_HELP = "Stop the run cleanly when it has emitted this many gCO2e (exit code 124)."
BUDGET_FORECAST_HELP = "Also stop when the forecast's 95% interval lies above the budget."


def budget_options(panel: str | None = None) -> dict[str, Any]:
    """The ``--budget-kwh``, ``--budget-gco2`` and ``--budget-forecast`` options (one
    definition for ``run``, ``train`` and ``sweep``)."""
    return {
        "budget_kwh": typer.Option(None, "--budget-kwh", help=BUDGET_KWH_HELP,
                                   rich_help_panel=panel),
        "budget_gco2": typer.Option(None, "--budget-gco2", help=BUDGET_GCO2_HELP,
                                    rich_help_panel=panel),
        "budget_forecast": typer.Option(False, "--budget-forecast", help=BUDGET_FORECAST_HELP,
                                        rich_help_panel=panel),
    }  # fmt: skip


def variant_options(panel: str | None = None) -> dict[str, Any]:
    """ssProp's ``--backend`` and its opt-in variants ``--reselect-every`` and
    ``--min-channels`` (one definition for ``train``, ``bench ssprop`` and ``flops``)."""
    return {
        "backend": typer.Option(
            "auto", "--backend", rich_help_panel=panel,
            help="Selection kernels: auto (triton on CUDA when installed, else aten) | aten | "
            "triton.",
        ),
        "reselect_every": typer.Option(
            1, "--reselect-every", rich_help_panel=panel,
            help="Opt-in variant: rank channels every N sparse backward passes, reusing the "
            "kept ones between (1 = the paper's).",
        ),
        "min_channels": typer.Option(
            0, "--min-channels", rich_help_panel=panel,
            help="Opt-in variant: layers with fewer than C output channels stay dense "
            "(0 = none).",
        ),
    }  # fmt: skip


def parse_tags(values: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; ConfigError for an item without ``=``."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag {item!r}: write it as KEY=VALUE, e.g. --tag study=cifar")
        out[key.strip()] = value.strip()
    return out


def check_status(status: str | None) -> None:
    """ConfigError unless ``status`` is None or a run status (``--status``)."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"--status {status!r}: use one of {', '.join(STATUSES)}")

"""Benchmarks behind ``greentrain bench``: speed and energy of ssProp against dense training.

Public API::

    from greentrain.bench import BenchConfig, run_ssprop_bench, run_and_record
    result = run_ssprop_bench(BenchConfig(model="resnet18", drops=(0.0, 0.8)))
    print_rich(result); print(to_markdown(result))

Importing this package imports torch (the CLI imports it inside ``greentrain bench``), never a
hardware library: NVML is opened when a GPU run reads its energy counter.
"""

from __future__ import annotations

from greentrain.bench.config import BenchConfig, parse_drops, parse_input_shape, validate
from greentrain.bench.record import run_and_record
from greentrain.bench.report import print_rich, to_markdown
from greentrain.bench.ssprop_bench import METHOD, SCHEMA, run_ssprop_bench, summary_rows

__all__ = [
    "BenchConfig",
    "METHOD",
    "SCHEMA",
    "parse_drops",
    "parse_input_shape",
    "print_rich",
    "run_and_record",
    "run_ssprop_bench",
    "summary_rows",
    "to_markdown",
    "validate",
]

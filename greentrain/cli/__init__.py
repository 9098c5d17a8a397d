"""The ``greentrain`` command line: a thin typer app, parsing and printing only.

Each sub-command lives in its own module under ``greentrain.cli`` and registers itself on
:data:`greentrain.cli._app.app` when imported here, in the order ``--help`` lists them.
Commands that train, benchmark or build tables import torch and pandas inside the command
function, so ``greentrain --help`` stays fast.
"""

from __future__ import annotations

from greentrain.cli._app import app, main

# isort: off
from greentrain.cli import run, runs, doctor, flops, train, sweep  # noqa: F401 - registers
from greentrain.cli import demo, export, app_cmd, bench, store_cmd  # noqa: F401 - registers
# isort: on

__all__ = ["app", "main"]

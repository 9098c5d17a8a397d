"""The ``greentrain`` command line: a thin typer app, parsing and printing only.

Each sub-command lives in its own module under ``greentrain.cli`` and registers itself on
:data:`greentrain.cli._app.app` when imported. Nothing is imported here: the root group
(:class:`greentrain.cli._app.LazyGroup`) imports a command's module when that command runs,
so ``greentrain run`` never loads what ``train``, ``export`` or ``flops`` need.
"""

from __future__ import annotations

from greentrain.cli._app import app, main

__all__ = ["app", "main"]

"""The typer application object and the entry point that turns our errors into one-liners.

Sub-commands are lazy: :data:`COMMANDS` names each one and the module that defines it, and
:class:`LazyGroup` imports that module only when the command is called (or its help shown), so
``greentrain run`` pays for its own imports and option parsing only, never for ``train``'s,
``export``'s or ``flops``'s. With typer >= 0.29, ``run``'s plain options are coerced
without pydantic (:mod:`greentrain.cli.plain_values`). That keeps ``greentrain run``'s fixed
cost under 0.5 s with any typer (benchmarks/startup_latency.py measures it) instead of pinning
an old one.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer
import typer.main
from typer.core import TyperGroup

from greentrain.cli.plain_values import PlainValues
from greentrain.errors import BudgetExceeded, ConfigError, GreentrainError
from greentrain.extras import missing_extra_error
from greentrain.record.secrets import redact

if TYPE_CHECKING:  # typer >= 0.29 runs on its own copy of click (typer._click)
    import click

try:  # typer >= 0.29 vendors click as typer._click and raises only its classes
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - an older typer raises click's own classes
    from click import exceptions as click_exceptions

USAGE_ERRORS: tuple[type[Exception], ...] = (click_exceptions.ClickException,)
ABORTS: tuple[type[BaseException], ...] = tuple(
    {typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)}
)
EXITS: tuple[type[BaseException], ...] = tuple(
    {typer.Exit, getattr(click_exceptions, "Exit", typer.Exit)}
)
# "greentrain" alone: the help was printed already; click >= 8.2 exits 2 without a message
HELP_SHOWN: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(click_exceptions, "NoArgsIsHelpError", None),) if c is not None
)

# command name -> module of greentrain.cli that registers it on `app`, in --help order
COMMANDS: dict[str, str] = {
    "run": "run",
    "runs": "runs",
    "show": "show",
    "rm": "runs",
    "doctor": "doctor",
    "flops": "flops",
    "train": "train",
    "sweep": "sweep",
    "demo": "demo",
    "export": "export",
    "app": "app_cmd",
    "bench": "bench",
    "store": "store_cmd",
}
# command name -> the extras whose modules it imports lazily (greentrain.extras): without
# them the command says, in one line, which extra to install
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("paper",),
    "sweep": ("paper", "slurm"),
    "demo": ("paper",),
    "flops": ("paper",),
    "bench": ("paper",),
    "export": ("paper",),
    "app": ("app",),
}
_INVOKED = "greentrain.command"  # ctx.meta key: the sub-command being run


class LazyGroup(PlainValues, TyperGroup):
    """The root group: lists :data:`COMMANDS`, imports a command's module on first use, and
    runs a command of :data:`COMMAND_EXTRAS` so that a missing extra is one line. Its own
    options are parsed without pydantic (:class:`~greentrain.cli.plain_values.PlainValues`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"greentrain.cli.{COMMANDS[cmd_name]}")
            # rebuild from what is registered now (only the modules imported so far)
            self.commands.update(typer.main.get_group(app).commands)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201 - click's
        name, cmd, rest = super().resolve_command(ctx, args)
        ctx.meta[_INVOKED] = name
        return name, cmd, rest

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - whatever the command returns
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as err:
            name = ctx.meta.get(_INVOKED, "")
            error = missing_extra_error(err, f"greentrain {name}", *COMMAND_EXTRAS.get(name, ()))
            if error is None:
                raise
            raise error from err


def load_all_commands() -> click.Group:
    """The whole command tree as click objects, every module imported (for generated docs)."""
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"greentrain.cli.{module}")
    return typer.main.get_group(app)


app = typer.Typer(
    name="greentrain",
    cls=LazyGroup,
    help="Meter the energy and carbon of deep-learning training; train with ssProp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Meter the energy and carbon of deep-learning training; train with ssProp."""


ENV_LOG_LEVEL = "GREENTRAIN_LOG_LEVEL"  # debug | info (default) | warning | error


class _StderrLines(logging.Handler):
    """A log record as one plain line on the *current* ``sys.stderr`` (which tests replace)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        if stream is None:
            return  # no terminal to tell (pythonw, a daemon)
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed or gone: nobody is left to read the line
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


@contextlib.contextmanager
def showing_library_messages() -> Iterator[None]:
    """While a command runs, the library's log records (``greentrain.*``) at INFO and above
    (``$GREENTRAIN_LOG_LEVEL``) are shown as plain lines on stderr; the library itself only
    logs. Outside the CLI (a script, a notebook) Python's defaults apply: warnings show."""
    logger = logging.getLogger("greentrain")
    handler = _StderrLines()
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logging.getLevelName(os.environ.get(ENV_LOG_LEVEL, "info").upper())
    previous = logger.level
    logger.setLevel(level if isinstance(level, int) else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def usage_error_line(err: BaseException) -> str:
    """A click/typer usage error as one line (``No such option: --bogus``)."""
    message = err.format_message() if hasattr(err, "format_message") else str(err)
    return " ".join(message.split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the process exit code.

    Our own errors and every usage error (whatever typer version parses the command line)
    become one ``error: ...`` line on stderr: exit 2 for a usage or configuration mistake,
    1 for a store or meter failure, 130 after Ctrl-C, 124 when a budget stopped the run. A
    traceback means a bug.
    """
    try:
        with showing_library_messages():
            result = app(args=argv, standalone_mode=False)
    except BudgetExceeded as err:
        print(f"stopped: {redact(str(err))}", file=sys.stderr)
        return err.exit_code
    except GreentrainError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)  # never a credential
        return 2 if isinstance(err, ConfigError) else 1
    except EXITS as exc:  # raised by commands to set the exit code
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except (KeyboardInterrupt, *ABORTS):
        print("interrupted", file=sys.stderr)
        return 130
    except USAGE_ERRORS as err:
        if not isinstance(err, HELP_SHOWN):
            print(f"error: {redact(usage_error_line(err))}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2) or 2)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

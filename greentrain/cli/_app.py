"""The typer application object and the entry point that turns our errors into one-liners."""

from __future__ import annotations

import sys

import typer

from greentrain.errors import BudgetExceeded, ConfigError, GreentrainError
from greentrain.record.secrets import redact

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

app = typer.Typer(
    name="greentrain",
    help="Meter the energy and carbon of deep-learning training; train with ssProp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Meter the energy and carbon of deep-learning training; train with ssProp."""


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

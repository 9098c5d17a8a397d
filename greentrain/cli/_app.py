"""The typer application object and the entry point that turns our errors into one-liners."""

from __future__ import annotations

import sys

import click
import typer

from greentrain.errors import ConfigError, GreentrainError

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


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the process exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
    except GreentrainError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except typer.Exit as exc:  # raised by commands to set the exit code
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

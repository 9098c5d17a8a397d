"""The exception types greentrain raises on purpose (StoreError's busy case, a budget's stop).

The CLI turns each of them into a one-line message and a non-zero exit code; a traceback
is only ever shown for a bug, never for a user mistake or a missing sensor.
"""

from __future__ import annotations


class GreentrainError(Exception):
    """Base class; ``str(err)`` is the one-line message shown to the user."""


class ConfigError(GreentrainError, ValueError):
    """Bad user input (an option, a file, a value). The message names the fix."""


class StoreError(GreentrainError):
    """The run store cannot be opened, read or written (damaged, foreign, locked, ...)."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the caller would wait."""


class MeterUnavailable(GreentrainError):
    """A meter cannot measure on this machine.

    ``reason`` says why (no GPU, no permission, package missing) and ``fix`` what the user
    can do about it; both are recorded in the run so a missing figure is never a silent zero.
    """

    def __init__(self, reason: str, fix: str = "") -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason} (fix: {fix})" if fix else reason)


EXIT_BUDGET = 124  # like timeout(1) when its limit is hit: stopped by a limit, not a failure


class BudgetExceeded(GreentrainError):
    """The run was stopped because it reached its energy or carbon budget (or was forecast
    to). The CLI exits with :data:`EXIT_BUDGET`; ``detail`` has the figures that tripped it."""

    exit_code = EXIT_BUDGET

    def __init__(self, message: str, detail: dict | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}

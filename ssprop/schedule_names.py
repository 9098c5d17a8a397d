"""The drop-rate schedules ssprop offers, by name, in the order help texts list them.

Torch-free on purpose: a command line can list and check schedule names without importing
torch. :data:`ssprop.schedulers.SCHEDULERS` maps exactly these names, in this order, to their
classes (``tests/ssprop/test_schedulers.py`` holds it to that).
"""

from __future__ import annotations

SCHEDULE_NAMES: tuple[str, ...] = ("constant", "linear", "cosine", "bar")


def check_schedule(name: str) -> str:
    """``name`` when it is a schedule's name; else ``ValueError`` with a one-line message."""
    if name not in SCHEDULE_NAMES:
        raise ValueError(
            f"unknown drop schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}"
        )
    return name

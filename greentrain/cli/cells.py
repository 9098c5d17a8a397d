"""What ``runs`` and ``show`` print a record's values with: every value of the wrong type shown
as its ``repr`` marked ``(invalid)``, never used; ``-``/``n/a`` for what is absent."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from greentrain.record.jsonable import dumps
from greentrain.report.reading import check_number, describe
from greentrain.units import format_energy


def invalid(value: object) -> str:
    return f"{describe(value)} (invalid)"


def fmt(value: object, fmt: str) -> str:
    """``value`` formatted with ``fmt``; ``-`` for None; the repr marked invalid otherwise."""
    if value is None:
        return "-"
    number, why = check_number(value)
    return invalid(value) if why is not None else format(number, fmt)


def policy_cell(value: object, show) -> str:
    """``value`` shown by the unit policy's ``show``; ``-`` for None, marked when invalid."""
    if value is None:
        return "-"
    number, why = check_number(value)
    return invalid(value) if why is not None else show(number)


def energy(value: object) -> str:
    """Joules in a readable unit (``n/a`` for None), or the repr marked invalid."""
    number, why = check_number(value)
    return invalid(value) if why is not None else format_energy(number)


def as_map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")


def console() -> Console:
    return Console(highlight=False, emoji=False, markup=False)

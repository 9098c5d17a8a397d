"""Reading run records tolerantly: every value a report uses is checked here, the same way.

A run record holds what a training script and its meters wrote, and a script can write
anything: a metric as text (``test_acc="0.9"``), a list or a boolean; a config value of the
wrong type (``drop_rate="high"``, ``model={...}``); a record from another tool or an old
version can hold an infinite PUE or a negative energy. The report modules read every value of
a run through a :class:`RunReader`, which

* gives a **number** only for a real, finite number -- ``bool`` is not one, and text is never
  parsed, ``"0.9"`` included -- and, for quantities that cannot be negative (energy, carbon,
  time, FLOPs, carbon intensity, PUE), only a non-negative one;
* gives **text** for text, and the ``repr`` of any other value (flagged);
* gives a **mapping** or a **list of mappings** only where the record has one;
* gives ``None`` (or an empty mapping or list) for anything else, and notes an :class:`Issue`:
  which run, which key, the value, what was done with it and why.

An ignored value is *missing*: a figure that is one value (final accuracy, a run's energy)
is then n/a, and a figure pooled from many (a mean over epochs, a study total) is computed
without it -- never with 0 in its place. A figure comes from its documented source only: when
that source holds an invalid value the figure is missing; it does not fall back to another
source (an invalid ``final_test_acc`` gives no accuracy, not the last ``test_acc``). A value
that is simply absent (``None``, or no such key) is no issue: that is how a record says "not
measured".

Each export shows the issues of the runs it reads (:func:`summarize`): LaTeX and Markdown mark
the affected rows with a dagger and list them under the tables, the statement ends with them,
CSV and JSON carry an ``issues`` field. The figure functions take an optional ``issues`` list
to append to; without it they are just as tolerant and say nothing.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from greentrain.report.escape import as_str

VALUE_CHARS = 60  # a bad value is quoted up to this many characters
LABEL_CHARS = 200  # a non-text value shown as a label, up to this many characters


@dataclass(frozen=True)
class Issue:
    """A value of run ``run`` at ``field`` (e.g. ``metrics[4].test_acc``) that could not be used.

    ``value`` is its ``repr`` (shortened), ``action`` what the report did (``ignored``, ``shown
    as text``, ``counted as estimated``), ``reason`` why, and ``count`` how many values of the
    same run, key pattern and reason it stands for (:func:`summarize`).
    """

    run: str
    field: str
    value: str
    action: str
    reason: str
    count: int = 1

    def text(self) -> str:
        """One line: ``run x1: metrics[4].test_acc = '0.9' ignored (text, not a number)``."""
        line = f"run {self.run}: {self.field} = {self.value} {self.action} ({self.reason})"
        return line if self.count == 1 else f"{line}, and {self.count - 1} more like it"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(value: object, limit: int = VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - huge ints, deep nesting, a failing __repr__
        text = as_str(value) if isinstance(value, int) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "a list"
    if isinstance(value, numbers.Number):
        return "a number"
    return f"a {type(value).__name__}"


def check_number(value: object, nonnegative: bool = False) -> tuple[float | None, str | None]:
    """``(float, None)`` for a usable number; ``(None, None)`` for ``None``; else
    ``(None, why)``. See the module docstring."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None, f"{_kind(value)}, not a number"
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None, "too large for a float"
    if math.isnan(number):
        return None, "NaN, not a number"
    if math.isinf(number):
        return None, "infinite"
    if nonnegative and number < 0:
        return None, "negative, impossible for this quantity"
    return number, None


class RunReader:
    """Reads the values of one run record, noting each it cannot use in ``issues`` (if given).

    Every reader takes the value and the dotted ``field`` it came from (for the note).
    """

    def __init__(self, run: object, issues: list[Issue] | None = None):
        self.run: Mapping[str, Any] = run if isinstance(run, Mapping) else {}
        self.id = as_str(self.run.get("id"))
        self.issues = issues
        if not isinstance(run, Mapping):
            self.flag("run", run, "ignored", f"{_kind(run)}, not a run record")
        for cell in self.run.get("unreadable") or ():  # cells the store could not give
            if isinstance(cell, Mapping) and self.issues is not None:
                self.issues.append(Issue(self.id, as_str(cell.get("field")),
                                         as_str(cell.get("value")), "ignored",
                                         "unreadable in the store"))  # fmt: skip

    def flag(self, field: str, value: object, action: str, reason: str) -> None:
        """Note that ``value`` at ``field`` was not used as recorded."""
        if self.issues is not None:  # duplicates (one value read by two figures): summarize()
            self.issues.append(Issue(self.id, field, describe(value), action, reason))

    def number(self, value: object, field: str, nonnegative: bool = False) -> float | None:
        """``value`` as a float, or ``None`` (flagged unless it was ``None``)."""
        number, why = check_number(value, nonnegative)
        if why is not None:
            self.flag(field, value, "ignored", why)
        return number

    def integer(self, value: object, field: str) -> int | None:
        """``value`` as an int (a 64-bit one; ``bool`` is not one), or ``None`` (flagged)."""
        if value is None:
            return None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if -(2**63) <= int(value) < 2**63:
                return int(value)
            self.flag(field, value, "ignored", "integer out of the 64-bit range")
            return None
        self.flag(field, value, "ignored", f"{_kind(value)}, not an integer")
        return None

    def text(self, value: object, field: str) -> str | None:
        """``value`` if it is text; ``None`` for ``None``; else its ``repr`` (flagged)."""
        if value is None or isinstance(value, str):
            return value
        self.flag(field, value, "shown as text", f"{_kind(value)}, not text")
        return describe(value, LABEL_CHARS)

    def flag_true(self, value: object, field: str) -> bool:
        """A yes/no flag: ``True`` for ``True``; ``False`` for ``False``/``None``; any other
        value is flagged and counts as ``True`` (an unreadable "estimated" is not a claim of
        measurement)."""
        if value is None or isinstance(value, bool):
            return bool(value)
        self.flag(field, value, "counted as true", f"{_kind(value)}, not true/false")
        return True

    def mapping(self, value: object, field: str) -> Mapping[str, Any]:
        """``value`` if it is a mapping; ``{}`` for ``None``; else ``{}`` (flagged)."""
        if isinstance(value, Mapping):
            return value
        if value is not None:
            self.flag(field, value, "ignored", f"{_kind(value)}, not a mapping")
        return {}

    def records(self, value: object, field: str) -> list[tuple[int, Mapping[str, Any]]]:
        """``[(position, entry)]`` of a list of mappings (``metrics``, ``windows``); entries
        that are not mappings, and a value that is not a list, are flagged and left out."""
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.flag(field, value, "ignored", f"{_kind(value)}, not a list")
            return []
        out = []
        for i, entry in enumerate(value):
            if isinstance(entry, Mapping):
                out.append((i, entry))
            else:
                self.flag(f"{field}[{i}]", entry, "ignored", f"{_kind(entry)}, not a mapping")
        return out

    # The fields every report reads, in one place.

    def config(self) -> Mapping[str, Any]:
        return self.mapping(self.run.get("config"), "config")

    def metrics(self) -> list[tuple[int, Mapping[str, Any]]]:
        return self.records(self.run.get("metrics"), "metrics")

    def windows(self) -> list[tuple[int, Mapping[str, Any]]]:
        return self.records(self.run.get("windows"), "windows")

    def energy(self) -> dict[str, Mapping[str, Any]]:
        """``{domain: figure}`` of the run's ``energy``; figures that are not mappings flagged."""
        energy = self.mapping(self.run.get("energy"), "energy")
        out = {}
        for domain, figure in energy.items():
            name = as_str(domain)
            if isinstance(figure, Mapping):
                out[name] = figure
            elif figure is not None:
                self.flag(f"energy.{name}", figure, "ignored", f"{_kind(figure)}, not a mapping")
        return out


_POSITION = re.compile(r"\[\d+\]")


def summarize(issues: Iterable[Issue]) -> list[Issue]:
    """Distinct issues in first-seen order, those of one run that differ only in a list
    position (``metrics[3].test_acc``, ``metrics[7].test_acc``) and reason merged into one
    (``metrics[*].test_acc``) that quotes the first value and counts them all."""
    groups: dict[tuple, dict[Issue, None]] = {}  # dicts as ordered sets
    for issue in issues:
        key = (issue.run, _POSITION.sub("[*]", issue.field), issue.action, issue.reason)
        groups.setdefault(key, {})[issue] = None
    out = []
    for (_, pattern, _, _), same in groups.items():
        first, *rest = same
        if not rest:
            out.append(first)
        else:
            count = sum(i.count for i in same)
            out.append(Issue(first.run, pattern, first.value, first.action, first.reason, count))
    return out


MAX_LISTED = 20  # issues listed under a LaTeX or Markdown table or a statement (JSON: all)
ISSUES_HEADING = "† Values that could not be read were left out (never counted as 0):"


def issue_lines(issues: list[Issue]) -> list[str]:
    """Plain-text lines listing ``issues`` (none if there are none), at most :data:`MAX_LISTED`
    and then how many more."""
    lines = [i.text() for i in issues[:MAX_LISTED]]
    if len(issues) > MAX_LISTED:
        lines.append(f"... and {len(issues) - MAX_LISTED} more (--format json lists them all).")
    return lines

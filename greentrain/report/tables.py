"""Every export format by name: :func:`render` (through the one registry,
:mod:`greentrain.report.formats`), and the table functions under their usual names."""

from __future__ import annotations

from collections.abc import Iterable

from greentrain.report import formats
from greentrain.report.text_tables import (
    CSV_COLUMNS,
    to_csv,
    to_json,
    to_latex,
    to_markdown,
)

__all__ = ["CSV_COLUMNS", "render", "to_csv", "to_json", "to_latex", "to_markdown"]


def render(runs: Iterable[dict], fmt: str, *, training_type: str | None = None) -> str:
    """The export of ``runs`` in format ``fmt`` (a name of :data:`~greentrain.report.formats.
    REGISTRY`) as text; ``training_type`` is the model card's."""
    return formats.render(runs, fmt, formats.RenderOptions(training_type=training_type))

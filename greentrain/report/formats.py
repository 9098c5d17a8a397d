"""The export formats: one registry, read by ``greentrain export``, the app's Export page, the
docs and the tests. A format is one :class:`ExportFormat` object (name, file suffix, MIME type,
what it is, how the app previews it, and its renderer); nothing lists them anywhere else.

Importing this module loads no pandas: each renderer imports its module when it is called, so the
CLI can build its help from :data:`REGISTRY` cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from greentrain.errors import ConfigError


@dataclass(frozen=True)
class RenderOptions:
    """What a user may choose for an export: ``group_by`` (config keys that form
    configurations; ``None`` = what varies), the model card's ``training_type``, the accuracy
    ``metric`` (``None`` = what the runs logged) and ``allow_fake`` (let runs metered by the test
    meter into a statement)."""

    group_by: Sequence[str] | None = None
    training_type: str | None = None
    metric: str | None = None
    allow_fake: bool = False


Renderer = Callable[[list[dict], RenderOptions], str]


@dataclass(frozen=True)
class ExportFormat:
    """One export format. ``preview`` is how the app shows it: ``"markdown"`` (rendered),
    ``"text"`` (wrapped plain text) or a code language (``"latex"``, ``"json"``, ``"yaml"``,
    ``"csv"``) for a highlighted block."""

    name: str
    suffix: str
    mime: str
    summary: str
    preview: str
    render: Renderer = field(repr=False, compare=False)

    @property
    def file_name(self) -> str:
        return f"greentrain-{self.name}{self.suffix}"


def _latex(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.latex_table import to_latex

    return to_latex(runs, o.group_by, o.metric)


def _markdown(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.text_tables import to_markdown

    return to_markdown(runs, o.group_by, o.metric)


def _csv(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.text_tables import to_csv

    return to_csv(runs, o.group_by, o.metric)


def _json(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.text_tables import to_json

    return to_json(runs, o.group_by, o.metric)


def _statement(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.statement import statement

    return statement(runs, metric=o.metric, allow_fake=o.allow_fake)


def _appendix(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.statement_appendix import appendix_markdown

    return appendix_markdown(runs)


def _appendix_latex(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.statement_appendix import appendix_latex

    return appendix_latex(runs)


def _model_card(runs: list[dict], o: RenderOptions) -> str:
    from greentrain.report.model_card import model_card

    return model_card(runs, o.training_type, allow_fake=o.allow_fake)


REGISTRY: tuple[ExportFormat, ...] = (
    ExportFormat("latex", ".tex", "text/x-tex", "LaTeX table (booktabs) that fits \\textwidth",
                 "latex", _latex),
    ExportFormat("markdown", ".md", "text/markdown", "Markdown table with the answer and totals",
                 "markdown", _markdown),
    ExportFormat("csv", ".csv", "text/csv", "one row per configuration, every statistic",
                 "csv", _csv),
    ExportFormat("json", ".json", "application/json", "configurations, runs, answer, totals",
                 "json", _json),
    ExportFormat("statement", ".txt", "text/plain", "carbon statement paragraph for a paper",
                 "text", _statement),
    ExportFormat("statement-appendix", ".md", "text/markdown",
                 "the statement's appendix: meters, methods, uncertainty", "markdown", _appendix),
    ExportFormat("statement-appendix-latex", ".tex", "text/x-tex",
                 "the statement's appendix as LaTeX", "latex", _appendix_latex),
    ExportFormat("model-card", ".yaml", "application/yaml",
                 "Hugging Face model card co2_eq_emissions block", "yaml", _model_card),
)  # fmt: skip
BY_NAME: Mapping[str, ExportFormat] = {f.name: f for f in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def get(name: str) -> ExportFormat:
    """The format called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"unknown export format {name!r}; use one of {', '.join(NAMES)}"
        ) from None


def help_text() -> str:
    """``"latex (LaTeX table ...) | markdown (...) | ..."`` for the CLI's ``--format`` help."""
    return " | ".join(f"{f.name} ({f.summary})" for f in REGISTRY)


def render(runs: Iterable[dict], name: str, options: RenderOptions | None = None) -> str:
    """The export of ``runs`` in format ``name``."""
    return get(name).render(list(runs), options or RenderOptions())

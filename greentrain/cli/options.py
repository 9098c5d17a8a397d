"""Parsing shared by several commands' options."""

from __future__ import annotations

from greentrain.errors import ConfigError
from greentrain.record.vocabulary import STATUSES


def parse_tags(values: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; ConfigError for an item without ``=``."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag {item!r}: write it as KEY=VALUE, e.g. --tag study=cifar")
        out[key.strip()] = value.strip()
    return out


def check_status(status: str | None) -> None:
    """ConfigError unless ``status`` is None or a run status (``--status``)."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"--status {status!r}: use one of {', '.join(STATUSES)}")

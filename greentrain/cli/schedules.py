"""The drop-rate schedules' names for the command line, from ssprop's torch-free registry
(:mod:`ssprop.schedule_names`): help texts list them and options are checked against them
before any command imports torch."""

from __future__ import annotations

from greentrain.errors import ConfigError
from ssprop.schedule_names import SCHEDULE_NAMES

SCHEDULE_CHOICES = " | ".join(SCHEDULE_NAMES)  # "constant | linear | cosine | bar"


def check_schedules(flag: str, text: str, *, many: bool = False) -> str:
    """``text`` when it names a schedule (``many``: a comma list of them), else ConfigError
    with the names to choose from."""
    names = [n.strip() for n in text.split(",")] if many else [text]
    for name in names:
        if name not in SCHEDULE_NAMES:
            raise ConfigError(f"unknown {flag} {name!r}: use one of {', '.join(SCHEDULE_NAMES)}")
    return text

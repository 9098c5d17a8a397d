"""What a run's client calls lost on the way, summed from the run's events.

The wrapper stores one event :data:`DROPS_EVENT` each time entries are found lost: the counts
a client process reported (its buffer was full while the wrapper did not read, a value could
not be stored, lines were left unsent at exit) and the lines the wrapper itself refused. Each
event carries ``count`` and ``reasons`` (reason -> entries), so the run's total is their sum.
The run object's ``client_drops`` field is that sum, present in every run (``count`` 0 when
nothing was lost), so an empty metric list never hides a loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DROPS_EVENT = "client entries dropped"


def client_drops(events: Iterable[Any]) -> dict[str, Any]:
    """``{"count": entries, "reasons": {reason: entries}}`` over ``events``'s drop events."""
    reasons: dict[str, int] = {}
    for event in events:
        if not isinstance(event, Mapping) or event.get("event") != DROPS_EVENT:
            continue
        detail = event.get("reasons")
        if not isinstance(detail, Mapping):
            continue
        for reason, n in detail.items():
            if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                reasons[str(reason)] = reasons.get(str(reason), 0) + n
    return {"count": sum(reasons.values()), "reasons": reasons}

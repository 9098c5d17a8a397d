"""A group budget's view of the whole group's spend: this node's own, live, plus the other
members' as the store has it.

Every member's wrapper stores its whole-run energy with each sample (every ``--sample-s``
seconds), so the others' part of the figure is at most one sample period old; it is read
every :data:`~greentrain.run.budget.CHECK_S` seconds in a thread of its own, so a store that
is slow or down never holds up the budget's checks (the last figure read stays in use). The
other members whose budget has already tripped are read with it: the group stops as one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greentrain.errors import StoreError
from greentrain.run.budget import CHECK_S
from greentrain.store.groups import GroupSpend

if TYPE_CHECKING:
    from greentrain.run.session import RunSession


class GroupSpendPoller:
    """The group's spend for a :class:`~greentrain.run.budget.BudgetGuard`.

    Args:
        store: returns the run's open store, or None while it is not open.
        group_id: the group.
        run_id: this node's run (its spend is ``own``, live, not the store's).
        own: this node's spend so far, joules (None while nothing measures).
        period_s: seconds between two reads of the store.
    """

    def __init__(
        self,
        store: Callable[[], Any],
        group_id: str,
        run_id: str,
        own: Callable[[], float | None],
        period_s: float = CHECK_S,
    ) -> None:
        self._store, self.group_id, self.run_id = store, group_id, run_id
        self._own = own
        self.period_s = period_s
        self.others = GroupSpend(None, 0)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Read the others' spend at once and then every ``period_s``, in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="greentrain-group-spend",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self.refresh()
            if self._done.wait(self.period_s):
                return

    def refresh(self) -> None:
        """One read of the other members' spend (kept as it was if the store cannot say)."""
        store = self._store()
        if store is None:
            return
        with contextlib.suppress(StoreError):
            self.others = store.group_spend(self.group_id, self.run_id)

    def spent_j(self) -> float | None:
        """The group's spend so far, joules: this node's (live) plus the others' (stored)."""
        parts = [p for p in (self._own(), self.others.energy_j) if p is not None]
        return sum(parts) if parts else None

    def stopped(self) -> list[str]:
        """The other members whose budget has tripped."""
        return list(self.others.stopped)

    def close(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def group_spend_for(session: RunSession) -> GroupSpendPoller | None:
    """The group spend a run's budget checks (a :class:`~greentrain.run.session.RunSession`):
    None when the run is in no group, has no budget, or its budget is per node."""
    budget = session.opts.budget
    if session.group is None or not budget.active or budget.per_node:
        return None
    return GroupSpendPoller(session.writes.store, session.group.id, session.run_id,
                            session.recorder.spent_j)  # fmt: skip

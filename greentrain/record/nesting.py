"""Nested runs: a run started inside another run's process tree, and totals that count it once.

A ``greentrain run`` (or ``track()``) whose environment carries ``GREENTRAIN_RUN`` -- set by the
wrapper of an outer run for every process of its job -- records that outer run as its
``parent``. The outer run metered the whole process tree, the inner job included: its energy
*contains* the inner run's. Both records keep their own figures (the inner run's are what its
job cost; the outer run's what the whole tree cost), and every total over several runs (the
statement, the exports' sums, the app's totals, ``greentrain runs``) adds a run only when none
of its ancestors is in the same set: :func:`counted_once`, the one function every total uses.

A run object carries ``parent`` (the id of the run it is nested in, or None), ``ancestors``
(parent, grandparent, ... as far as the store knows them) and ``children`` (the ids of the runs
nested directly in it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def ancestor_chain(run_id: str, parents: Mapping[str, str | None]) -> list[str]:
    """``run_id``'s ancestors, nearest first, following ``parents`` (run id -> parent id); a
    cycle (a store edited by hand) ends the chain."""
    chain: list[str] = []
    seen = {run_id}
    parent = parents.get(run_id)
    while parent and parent not in seen:
        chain.append(parent)
        seen.add(parent)
        parent = parents.get(parent)
    return chain


def ancestors_of(run: Mapping[str, Any]) -> list[str]:
    """A run object's ancestors (its ``ancestors`` list, else its ``parent``), ids as text."""
    chain = run.get("ancestors")
    if isinstance(chain, list) and chain:
        return [a for a in chain if isinstance(a, str)]
    parent = run.get("parent")
    return [parent] if isinstance(parent, str) and parent else []


def nested_in(run: Mapping[str, Any], ids: Iterable[str]) -> str | None:
    """The nearest ancestor of ``run`` among ``ids`` (whose total already holds its energy),
    else None."""
    present = set(ids)
    return next((a for a in ancestors_of(run) if a in present), None)


def counted_once(runs: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each run of ``runs``: whether a total over ``runs`` adds its energy (and duration).

    False for a run nested in another run of the set (directly or further down): that run's
    energy is already inside its ancestor's figure.
    """
    ids = {r.get("id") for r in runs if isinstance(r.get("id"), str)}
    return [nested_in(r, ids) is None for r in runs]

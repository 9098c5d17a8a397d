"""A run group's size: the members it expects against the members recorded (issue 24).

Each member's wrapper records the size its group expects (``runs.group_size``, from
``--group-size``, torchrun's ``--nnodes``, ``PET_NNODES`` or SLURM's tasks); a group with fewer
members than the largest of those is *incomplete*: a rendezvous that never completed, a node
whose wrapper could not start, one node's file read alone. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def group_size(members: Sequence[Any]) -> dict[str, Any]:
    """The group's ``size`` from its members (each with a ``size``: what its wrapper expected, or
    None): members expected (the largest recorded; None: unknown), seen, and
    whether the group is complete (unknown counts as complete: nothing says otherwise)."""
    sizes = [m.size for m in members if m.size is not None]
    expected = max(sizes) if sizes else None
    seen = len(members)
    return {"expected": expected, "seen": seen,
            "complete": expected is None or seen >= expected}  # fmt: skip


def nodes_text(size: Mapping[str, Any]) -> str:
    """``"2 of 2 nodes"``, ``"1 of 2 nodes (incomplete)"``, or ``"2 nodes"`` when unknown."""
    seen, expected = size.get("seen"), size.get("expected")
    if expected is None:
        return f"{seen} node{'s' if seen != 1 else ''}"
    mark = "" if size.get("complete") else " (incomplete)"
    return f"{seen} of {expected} nodes{mark}"


def nodes_cell(run: Mapping[str, Any]) -> str:
    """A run list's ``nodes`` cell: "k of N" for a group that knows its size, the count for
    one that does not, "" for a run of one wrapper."""
    nodes, size = run.get("nodes"), run.get("size")
    if not isinstance(nodes, list) or not nodes:
        return ""
    if not isinstance(size, Mapping) or size.get("expected") is None:
        return str(len(nodes))
    return f"{size.get('seen')} of {size.get('expected')}"

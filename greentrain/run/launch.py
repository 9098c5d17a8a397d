"""A reused group id never merges two launches: each launch of a group id gets its own group.

The same ``--group G1`` given to two launches of a job (or a fixed torchrun ``--rdzv-id``, or a
SLURM job that was requeued) would otherwise put both launches' nodes in one group: twice the
nodes, two ``vm#0``, the windows of two jobs mixed. The rule chosen is **a new group, not a
refusal**: the second launch is recorded as ``G1#2`` (the third ``G1#3``...), and the wrapper
says so on stderr. A refusal would fail a requeued SLURM job before it starts, and no record
is lost or mixed either way; to look at every launch of ``G1``, list ``greentrain runs`` (each
launch is a row).

Which group a wrapper joins (:func:`place`), from the members of ``G``, ``G#2``, ... in the
store when it starts:

* its launch id names one launch only (SLURM's job step and restart count, an explicit
  ``GREENTRAIN_LAUNCH_ID``): the group that holds that launch, else ``G`` if unused, else the
  next ``G#k``;
* otherwise (a torchrun run id, which every launch with the same ``--rdzv-id`` shares, or
  nothing): the latest ``G#k`` while it is *open* -- a member still running, the first started
  less than :data:`JOIN_S` ago (torchrun's rendezvous waits 600 s by default), fewer members
  than it expects, the same torchrun id -- and it takes that group's launch id; else ``G`` if
  unused, else the next ``G#k``, with a new launch id (the torchrun id and a random suffix).

Wrappers that start at the same instant on an empty store all pick ``G``. A store that cannot
be read when the wrapper starts leaves the group as detected (and the wrapper says so).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from greentrain.errors import StoreError
from greentrain.run.group import MAX_GROUP_LEN, GroupInfo
from greentrain.run.oversight import say

JOIN_S = 900.0  # seconds after a launch's first member started during which others may join it
_VARIANT = re.compile(r"^(?P<base>.*)#(?P<k>[0-9]+)$")


def variant(group_id: str, k: int) -> str:
    """The id of launch ``k`` of ``group_id`` (``G``, ``G#2``, ``G#3`` ...)."""
    return group_id if k == 1 else f"{group_id}#{k}"[-MAX_GROUP_LEN:]


def _k(group_id: str, name: str) -> int | None:
    if name == group_id:
        return 1
    m = _VARIANT.match(name)
    return int(m["k"]) if m and m["base"] == group_id and int(m["k"]) >= 2 else None


def _open(rows: Sequence[Mapping[str, Any]], info: GroupInfo, now: float) -> bool:
    running = any(r.get("status") == "running" for r in rows)
    first = min(float(r.get("started_unix") or 0.0) for r in rows)
    sizes = [r["group_size"] for r in rows if isinstance(r.get("group_size"), int)]
    full = bool(sizes) and len(rows) >= max(sizes)
    launch = str(rows[0].get("launch_id") or "")
    same = info.launch is None or launch.split("~", 1)[0] == info.launch
    return running and now - first < JOIN_S and not full and same


def place(
    info: GroupInfo, rows: Sequence[Mapping[str, Any]], now: float | None = None
) -> tuple[GroupInfo, str | None]:
    """(the group this wrapper joins, a line to print or None) given the ``runs`` rows
    (``group_id``, ``launch_id``, ``status``, ``started_unix``, ``group_size``) of ``G`` and
    its ``G#k``; see the module docstring."""
    now = time.time() if now is None else now
    launches: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        k = _k(info.id, str(row.get("group_id")))
        if k is not None:
            launches.setdefault(k, []).append(row)
    if info.launch_unique:
        for k in sorted(launches):
            if any(r.get("launch_id") == info.launch for r in launches[k]):
                return replace(info, id=variant(info.id, k)), None
    elif launches:
        latest = max(launches)
        if _open(launches[latest], info, now):
            launch = launches[latest][0].get("launch_id") or info.launch
            return replace(info, id=variant(info.id, latest), launch=launch), None
    launch = info.launch
    if not info.launch_unique:
        launch = f"{info.launch or 'launch'}~{uuid.uuid4().hex[:8]}"
    if not launches:
        return replace(info, launch=launch), None
    new = variant(info.id, max(launches) + 1)
    earlier = launches[max(launches)][0].get("launch_id") or "unknown"
    return replace(info, id=new, launch=launch), (
        f"group {info.id} already holds another launch ({earlier}); this launch is recorded as "
        f"group {new}, so the two are never merged (GREENTRAIN_LAUNCH_ID or SLURM's job id "
        "names a launch; see the clusters guide)"
    )


def settle_group(group: GroupInfo | None, store: Any, wait_s: float = 5.0) -> GroupInfo | None:
    """``group`` placed among the launches in ``store`` (:func:`place`, printing its line);
    as detected when there is no group, no open store, or the store does not answer within
    ``wait_s`` seconds (the job is not held up: the launch id still tells the launches apart
    in the record)."""
    if group is None or store is None:
        return group
    found: list[Any] = []

    def read() -> None:
        with contextlib.suppress(StoreError):
            found.append(store.group_launch_rows(group.id))

    reader = threading.Thread(target=read, name="greentrain-launch", daemon=True)
    reader.start()
    reader.join(wait_s)
    if not found:
        say(f"the store did not say which launches group {group.id} holds; this node joins it "
            f"as launch {group.launch or 'unknown'}")  # fmt: skip
        return group
    placed, line = place(group, found[0])
    if line:
        say(line)
    return placed

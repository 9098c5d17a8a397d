"""A node's ranks, as its launched workers report them, not as the launcher was told.

With ``--rdzv-backend c10d`` torchrun ignores ``--node-rank``: the rendezvous hands out node
ranks in the order the nodes arrive, so the node a wrapper guessed to be rank 0 from its
command may not hold global rank 0. The workers know: torchrun starts each with ``GROUP_RANK``
(its node's rank), ``RANK`` (its global rank) and ``LOCAL_RANK``. The wrapper reads them from
the environment its job's processes were started with (``/proc/PID/environ``, the same user's
processes) at every sample, and records the node's ``group_rank`` and the lowest global rank
on the node (``global_rank``); the group's lead is the node with global rank 0
(:mod:`greentrain.record.group`). Under ``srun`` with a wrapper per task the task's
``SLURM_PROCID`` already is its rank, and workers that do not set ``RANK`` change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def process_env(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with ({} when it cannot be read)."""
    try:
        with open(f"/proc/{int(pid)}/environ", "rb") as fh:
            raw = fh.read()
    except (OSError, ValueError):
        return {}
    out = {}
    for item in raw.split(b"\0"):
        name, eq, value = item.partition(b"=")
        if eq:
            out[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def ranks_of(envs: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """``{"group_rank", "global_rank"}`` from workers' environments: the node rank the workers
    report (``GROUP_RANK``) and the lowest global ``RANK`` among them; keys only for what some
    worker reports."""
    group, ranks = None, []
    for env in envs:
        rank = _int(env.get("RANK"))
        if rank is None:
            continue
        ranks.append(rank)
        node = _int(env.get("GROUP_RANK"))
        if node is not None:
            group = node if group is None else min(group, node)
    out: dict[str, int] = {}
    if ranks:
        out["global_rank"] = min(ranks)
    if group is not None:
        out["group_rank"] = group
    return out


class WorkerRanks:
    """The ranks a node's workers report, read once per worker (its environment is fixed from
    its exec on); :meth:`update` returns the fields to store when they change."""

    def __init__(self) -> None:
        self._envs: dict[int, dict[str, str]] = {}
        self.found: dict[str, int] = {}

    def update(self, pids: Iterable[int]) -> dict[str, Any]:
        """Read the new processes among ``pids``; the changed ``{"group_rank", "global_rank"}``
        ({} when nothing changed)."""
        live = set(pids)
        for pid in live - set(self._envs):
            env = process_env(pid)
            if "RANK" in env:  # a worker's, fixed for its life; others are read again (a
                self._envs[pid] = env  # process read between its fork and its exec)
        found = ranks_of(self._envs[pid] for pid in live if pid in self._envs)
        if not found or found == {k: self.found.get(k) for k in found}:
            return {}
        self.found.update(found)
        return dict(found)

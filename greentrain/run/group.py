"""Which run group a ``greentrain run`` joins: the wrappers of one multi-node job, one per node
(or per task), record one logical run.

The group id comes from, in this order:

1. ``--group ID`` (:attr:`RunOptions.group <greentrain.run.options.RunOptions.group>`);
2. SLURM: a job step of several tasks (``SLURM_JOB_ID`` and ``SLURM_STEP_ID``, with
   ``SLURM_CLUSTER_NAME`` when set): ``slurm-[CLUSTER-]JOB.STEP``. A step of one task spans one
   machine and needs no group; the batch script itself (no step id) is not grouped either;
3. torchrun: ``TORCHELASTIC_RUN_ID`` in the wrapper's environment, or the ``--rdzv-id`` of a
   ``torchrun``/``python -m torch.distributed.run`` command with ``--nnodes`` above 1 (what
   torchrun hands its workers as ``TORCHELASTIC_RUN_ID``): ``torchrun-ID``.

The wrapper's rank in the group is ``SLURM_PROCID``, else torchrun's ``--node-rank``, else
``GROUP_RANK``; None when nothing says. A multi-node torchrun command without an id gets a
warning instead of a group (``--rdzv-id none`` is torchrun's default, shared by every job).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from greentrain.errors import ConfigError

MAX_GROUP_LEN = 200
TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")


@dataclass(frozen=True)
class GroupInfo:
    """A run's group: its id, the wrapper's rank in it, and where the id came from."""

    id: str
    rank: int | None
    source: str


def check_group_id(value: str) -> str:
    """A ``--group`` value, stripped; ConfigError if empty, too long or not printable."""
    text = value.strip()
    if not text or len(text) > MAX_GROUP_LEN or not text.isprintable():
        raise ConfigError(
            f"--group {value!r}: give a printable id of 1 to {MAX_GROUP_LEN} characters, the "
            "same on every node of the job (e.g. --group $SLURM_JOB_ID)"
        )
    return text


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def torchrun_args(command: Sequence[str]) -> dict[str, str] | None:
    """The options of a torchrun command (``--rdzv-id`` and ``--rdzv_id`` alike, as
    ``rdzv_id``), up to its script; None if ``command`` is not torchrun."""
    if not command:
        return None
    args = list(command)
    if Path(args[0]).name.startswith("python") and len(args) > 2 and args[1] == "-m":
        if args[2] not in TORCHRUN_MODULES:
            return None
        args = args[3:]
    elif Path(args[0]).name in ("torchrun", "torch.distributed.run"):
        args = args[1:]
    else:
        return None
    out: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].lstrip("-").partition("=")
        name = name.replace("-", "_")
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("-"):
            value, i = args[i + 1], i + 1
        out[name] = value
        i += 1
    return out


def _max_nodes(nnodes: str | None) -> int:
    """``--nnodes 2`` or ``--nnodes 1:4`` -> the largest node count (1 when absent)."""
    if not nnodes:
        return 1
    return max((_int(part) or 1) for part in nnodes.split(":"))


def detect_group(
    command: Sequence[str],
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[GroupInfo | None, str | None]:
    """(the group this wrapper joins or None, a warning to print or None); see the module
    docstring for the order."""
    env = os.environ if environ is None else environ
    torch = torchrun_args(command)
    rank = _int(env.get("SLURM_PROCID"))
    if rank is None and torch is not None:
        rank = _int(torch.get("node_rank"))
    if rank is None:
        rank = _int(env.get("GROUP_RANK"))
    if explicit is not None:
        return GroupInfo(check_group_id(explicit), rank, "--group"), None
    tasks = _int(env.get("SLURM_STEP_NUM_TASKS")) or _int(env.get("SLURM_NTASKS")) or 1
    job, step = env.get("SLURM_JOB_ID", "").strip(), env.get("SLURM_STEP_ID", "").strip()
    if job and step and tasks > 1:
        cluster = env.get("SLURM_CLUSTER_NAME", "").strip()
        prefix = f"slurm-{cluster}-" if cluster else "slurm-"
        return GroupInfo(check_group_id(f"{prefix}{job}.{step}"), rank, "slurm"), None
    elastic = env.get("TORCHELASTIC_RUN_ID", "").strip()
    if elastic and elastic != "none":
        return GroupInfo(check_group_id(f"torchrun-{elastic}"), rank, "torchrun"), None
    if torch is not None and _max_nodes(torch.get("nnodes")) > 1:
        rdzv = torch.get("rdzv_id", "").strip()
        if rdzv and rdzv != "none":
            return GroupInfo(check_group_id(f"torchrun-{rdzv}"), rank, "torchrun"), None
        return None, (
            "this torchrun job spans several nodes but has no id, so each node is recorded "
            "as a run of its own; pass --group ID to greentrain run (or --rdzv-id ID to "
            "torchrun) with the same ID on every node to record them as one run"
        )
    return None, None

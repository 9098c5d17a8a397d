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
``GROUP_RANK``; None when nothing says. It is only a first guess: with ``--rdzv-backend c10d``
torchrun ignores ``--node-rank``, so the wrapper replaces it with what the launched workers
report (:mod:`greentrain.run.ranks`). A multi-node torchrun command without an id gets a
warning instead of a group (``--rdzv-id none`` is torchrun's default, shared by every job).

The size the group expects (:func:`expected_size`) and the launch this wrapper belongs to
(:func:`launch_of`) are recorded with every member; :mod:`greentrain.run.launch` uses the
launch to keep a reused group id from merging two launches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from greentrain.errors import ConfigError

MAX_GROUP_LEN = 200
TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")


ENV_LAUNCH = "GREENTRAIN_LAUNCH_ID"


@dataclass(frozen=True)
class GroupInfo:
    """A run's group: its id, the wrapper's rank in it, where the id came from, the members
    it expects (``size``, from ``size_source``; None: unknown) and the launch (``launch``;
    ``launch_unique``: the id names one launch only, as SLURM's job step and restart do, not
    a torchrun ``--rdzv-id`` that a new launch may reuse)."""

    id: str
    rank: int | None
    source: str
    size: int | None = None
    size_source: str | None = None
    launch: str | None = None
    launch_unique: bool = False


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


def expected_size(
    command: Sequence[str], size: int | None, env: Mapping[str, str]
) -> tuple[int | None, str | None]:
    """(members the group expects, where that came from): ``--group-size``, else torchrun's
    ``--nnodes`` (its largest), else ``PET_NNODES``, else the SLURM step's tasks (one wrapper
    per task: ``SLURM_STEP_NUM_TASKS``, ``SLURM_NTASKS``), else ``SLURM_NNODES``; (None, None)
    when nothing says."""
    if size is not None:
        return size, "--group-size"
    torch = torchrun_args(command)
    if torch is not None and torch.get("nnodes"):
        return _max_nodes(torch.get("nnodes")), "--nnodes"
    if env.get("PET_NNODES", "").strip():
        return _max_nodes(env["PET_NNODES"]), "PET_NNODES"
    if env.get("SLURM_STEP_ID", "").strip():
        for name in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
            if (_int(env.get(name)) or 0) > 0:
                return _int(env.get(name)), name
    if (_int(env.get("SLURM_NNODES")) or 0) > 0:
        return _int(env.get("SLURM_NNODES")), "SLURM_NNODES"
    return None, None


def launch_of(command: Sequence[str], env: Mapping[str, str]) -> tuple[str | None, bool]:
    """(this launch's id, whether it names one launch only): ``GREENTRAIN_LAUNCH_ID`` (unique:
    the user says so), SLURM's ``[CLUSTER-]JOB.STEP`` with ``.rN`` after a requeue
    (``SLURM_RESTART_COUNT``; unique), else torchrun's run id (``TORCHELASTIC_RUN_ID`` or
    ``--rdzv-id``: not unique, a fixed id is reused by every launch); (None, False) else."""
    given = env.get(ENV_LAUNCH, "").strip()
    if given:
        return given[:MAX_GROUP_LEN], True
    job = env.get("SLURM_JOB_ID", "").strip()
    if job:
        cluster = env.get("SLURM_CLUSTER_NAME", "").strip()
        step = env.get("SLURM_STEP_ID", "").strip()
        restarts = _int(env.get("SLURM_RESTART_COUNT")) or 0
        text = f"slurm-{cluster + '-' if cluster else ''}{job}" + (f".{step}" if step else "")
        return text + (f".r{restarts}" if restarts else ""), True
    elastic = env.get("TORCHELASTIC_RUN_ID", "").strip()
    torch = torchrun_args(command) or {}
    rdzv = elastic if elastic and elastic != "none" else torch.get("rdzv_id", "").strip()
    if rdzv and rdzv != "none":
        return f"torchrun-{rdzv}", False
    return None, False


def detect_group(
    command: Sequence[str],
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    size: int | None = None,
) -> tuple[GroupInfo | None, str | None]:
    """(the group this wrapper joins or None, a warning to print or None); see the module
    docstring for the order. ``size``: ``--group-size`` (None: found as
    :func:`expected_size` says)."""
    env = os.environ if environ is None else environ
    group, warning = _detect(command, explicit, env)
    if group is None:
        return None, warning
    members, source = expected_size(command, size, env)
    launch, unique = launch_of(command, env)
    return replace(group, size=members, size_source=source, launch=launch,
                   launch_unique=unique), warning  # fmt: skip


def _detect(
    command: Sequence[str], explicit: str | None, env: Mapping[str, str]
) -> tuple[GroupInfo | None, str | None]:
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

"""SLURM's own energy figure for the job step a run ran in: ``sacct``'s ``ConsumedEnergyRaw``
(joules, from the cluster's ``AcctGatherEnergyType`` plugin), recorded beside greentrain's.

At the run's end -- after the meters' final readings, before the record is finalized -- a
wrapper that runs under SLURM (``SLURM_JOB_ID``; the step from ``SLURM_STEP_ID``) with ``sacct``
on its ``PATH`` asks::

    sacct -j JOB.STEP --noheader --parsable2 --format=JobID,State,NNodes,ConsumedEnergyRaw

and stores the answer as a ``slurm accounting`` event; readers turn it into the run object's
``energy_alternatives`` with the disagreement in % (:mod:`greentrain.record.accounting`). In a
run group only the wrapper of rank 0 (or of no rank) asks: the step's figure covers all its
nodes, once. The step is usually still running then (its tasks, the wrappers, are ending), so
the state is kept: SLURM's figure then stops at its last energy poll (``AcctGatherNodeFreq``).
An answer without a figure (no energy plugin: an empty field or SLURM's "no value") is recorded
with the reason, never as 0 J; ``sacct`` failing or hanging (:data:`SACCT_TIMEOUT_S`) too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from greentrain.record.accounting import SLURM_EVENT
from greentrain.run.group import GroupInfo

SACCT_FORMAT = "JobID,State,NNodes,ConsumedEnergyRaw"
SACCT_TIMEOUT_S = 5.0
NO_VALUE = 2**63  # SLURM's NO_VAL64 (2**64 - 2) and the like: "no figure", not joules
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED")


def slurm_job(environ: Mapping[str, str]) -> str | None:
    """``JOB.STEP`` (or ``JOB`` outside a numbered step) of this process; None outside SLURM."""
    job = environ.get("SLURM_JOB_ID", "").strip()
    if not job:
        return None
    step = environ.get("SLURM_STEP_ID", "").strip()
    return f"{job}.{step}" if step.isdigit() else job


def consumed_energy(job: str, sacct: str = "sacct") -> dict[str, Any]:
    """What ``sacct`` says of ``job``: ``{"job", "command", "state", "nodes",
    "consumed_energy_j", "final", "reason"}`` (``consumed_energy_j`` None with a reason when
    SLURM gave no figure)."""
    argv = [sacct, "-j", job, "--noheader", "--parsable2", f"--format={SACCT_FORMAT}"]
    out: dict[str, Any] = {"job": job, "command": " ".join(["sacct", *argv[1:]]), "state": None,
                           "nodes": None, "consumed_energy_j": None, "final": False,
                           "reason": ""}  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=SACCT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        out["reason"] = f"sacct did not answer: {err}"
        return out
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
        out["reason"] = f"sacct failed: {first}"
        return out
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.strip()]
    row = next((r for r in rows if r[0] == job), None)
    if row is None or len(row) < 4:
        out["reason"] = f"sacct knows no job step {job}"
        return out
    state = row[1].split()[0] if row[1].strip() else ""
    out.update(state=state, final=state in ENDED, nodes=int(row[2]) if row[2].isdigit() else None)
    raw = row[3].strip()
    if raw.isdigit() and int(raw) < NO_VALUE:
        out["consumed_energy_j"] = float(raw)
    else:
        out["reason"] = (f"SLURM recorded no energy for {job} (ConsumedEnergyRaw {raw or 'empty'}"
                         "): the cluster has no AcctGatherEnergyType plugin")  # fmt: skip
    return out


def record_slurm_figure(
    recorder: Any, group: GroupInfo | None, environ: Mapping[str, str] | None = None
) -> None:
    """Store SLURM's figure as an event of ``recorder``'s run (see the module docstring);
    nothing outside SLURM, without ``sacct``, or on a group's node of rank > 0."""
    env = os.environ if environ is None else environ
    job = slurm_job(env)
    sacct = shutil.which("sacct", path=env.get("PATH"))
    if job is None or sacct is None or (group is not None and group.rank not in (0, None)):
        return
    recorder.event_now(SLURM_EVENT, **consumed_energy(job, sacct))

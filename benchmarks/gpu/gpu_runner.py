"""Run the stages in order, each under its own deadline, and keep what each one left.

Each stage is a subprocess in its own process group (``start_new_session``) with stdout and
stderr going to files in the work folder, so nothing blocks on a pipe and a killed stage still
leaves its log. At its deadline the whole group gets SIGTERM, then SIGKILL after
:data:`GRACE_S` (compile workers included); after a normal exit any process left in the group
is killed the same way. A stage that fails, times out or prints something that is not JSON is
recorded as such and the next stage starts.

Only the output folder comes back from the GPU machine, and at most 8 files of it, so after
every stage the runner rewrites two files there (each atomically, by rename): ``gpu-run.tar.gz``
(the work folder: every stage's stdout, log, JSON, ``status.json``) and ``summary.md``. A run
cut off at any point still returns every stage that ended before.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from gpu_plan import Stage

GRACE_S = 5.0  # between SIGTERM and SIGKILL of a stage's process group
ARCHIVE = "gpu-run.tar.gz"
SUMMARY = "summary.md"
STATUS = "status.json"


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def end_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM the process group of ``proc`` (its own session), SIGKILL what is left after
    ``grace_s``; reaps ``proc``."""
    pgid = proc.pid
    if _signal_group(pgid, signal.SIGTERM):
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _junit_summary(path: Path) -> dict | None:
    """Counts and failing tests of a pytest JUnit XML file (None if absent or unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {
        k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")
    }
    problems, skipped = [], []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                problems.append({"test": name, tag: (node.get("message") or "")[:500]})
        node = case.find("skipped")
        if node is not None:
            skipped.append({"test": name, "reason": (node.get("message") or "")[:200]})
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "problems": problems, "skipped_tests": skipped}


def run_stage(stage: Stage, work: Path, deadline_s: float, env: dict, cwd: Path, py: str) -> dict:
    """Run one stage under ``deadline_s``; write ``<name>.out``/``.log`` (and ``.json`` when
    its output is JSON, or a pytest summary) into ``work``; return its record."""
    argv = [a.replace("{py}", py).replace("{work}", str(work)) for a in stage.argv]
    out_path, log_path = work / f"{stage.name}.out", work / f"{stage.name}.log"
    t0 = time.monotonic()
    timed_out = False
    with open(out_path, "wb") as out, open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on SIGTERM of the runbook (:func:`exit_on_sigterm`)
            end_group(proc)  # and whatever the stage left running in its group
    seconds = time.monotonic() - t0
    record = {
        "name": stage.name,
        "what": stage.what,
        "command": shlex.join(argv),
        "deadline_s": round(deadline_s, 1),
        "seconds": round(seconds, 1),
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "json": None,
        "stdout": out_path.name,
        "log": log_path.name,
    }
    text = out_path.read_text(errors="replace")
    result = None
    if stage.output in ("bench", "json"):
        try:
            result = json.loads(text)
        except ValueError:
            record["problem"] = "stdout is not JSON"
        if (
            result is not None
            and stage.output == "bench"
            and not str(result.get("schema", "") if isinstance(result, dict) else "").startswith(
                "greentrain.bench.ssprop/"
            )
        ):
            record["problem"], result = "stdout is not a bench ssprop result", None
    else:
        result = _junit_summary(work / f"{stage.name}.xml")
    if result is not None:
        (work / f"{stage.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        record["json"] = f"{stage.name}.json"
        if stage.output == "bench":
            record["headline"] = headline(result)
    if timed_out:
        record["status"] = f"timed out after {deadline_s:.0f} s"
    elif proc.returncode != 0:
        record["status"] = f"failed (exit {proc.returncode})"
    elif record.get("problem"):
        record["status"] = record["problem"]
    else:
        record["status"] = "ok"
    return record


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so a runbook stopped from outside
    still ends the running stage's process group (its own session would outlive the runbook)
    and publishes what it has."""

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def headline(result: dict) -> str:
    """One line of a bench result's ratios to the fastest dense, median [95% interval], so the
    figures reach the device call's printed output even if no file came back."""

    def cell(ratio: dict | None) -> str:
        if not ratio:
            return "-"
        ci = ratio.get("interval") or {}
        span = f" [{ci['low']:.3f}-{ci['high']:.3f}]" if ci else ""
        return f"{ratio['median']:.3f}{span}"

    parts = []
    for v in result.get("variants", []):
        if v.get("kind") == "dense":
            continue
        fast = v.get("ratios_vs_fastest_dense") or {}
        parts.append(
            f"{v['name']}: step {cell(fast.get('step_time'))}, J/step {cell(fast.get('energy'))}"
        )
    for t in (result.get("layers_total") or {}).get("sparse") or []:
        parts.append(f"layers {t['variant']}: {cell(t.get('round_ratio'))}")
    return "; ".join(parts)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def publish(work: Path, out: Path, status: dict) -> None:
    """Write ``status.json`` into ``work``, then the archive and the summary into ``out``."""
    (work / STATUS).write_text(json.dumps(status, indent=1) + "\n")

    def archive(tmp: Path) -> None:
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(work.iterdir()):
                tar.add(path, arcname=f"gpu-run/{path.name}")

    _atomic_write(out / ARCHIVE, archive)
    _atomic_write(out / SUMMARY, lambda tmp: tmp.write_text(summary(status)))


def summary(status: dict) -> str:
    """A short Markdown table of the stages (also printed at the end of the run)."""
    lines = [
        f"# GPU run: {status.get('machine', '?')}",
        "",
        f"budget {status['budget_s']:.0f} s, used {status.get('elapsed_s', 0):.0f} s; "
        f"wheels: {status.get('install', {}).get('status', '-')}",
        "",
        "| stage | status | s | deadline s |",
        "|---|---|---|---|",
    ]
    for r in status["stages"]:
        lines.append(f"| {r['name']} | {r['status']} | {r['seconds']} | {r['deadline_s']} |")
    lines += ["", "Ratios to the fastest dense, median [95% interval]:", ""]
    lines += [f"- {r['name']}: {r['headline']}" for r in status["stages"] if r.get("headline")]
    return "\n".join(lines) + "\n"


def run_plan(
    stages: list[Stage],
    *,
    work: Path,
    out: Path,
    budget_s: float,
    env: dict,
    cwd: Path,
    py: str,
    status: dict,
    log: Callable[[str], None] = print,
) -> dict:
    """Run ``stages`` in order within ``budget_s`` (from now); publish after each; returns the
    final status. A stage starts only with at least its ``min_s`` left; its deadline is the
    smaller of its ``limit_s`` and the time left."""
    t0 = time.monotonic()
    status.setdefault("stages", [])
    status["budget_s"] = budget_s
    publish(work, out, status)
    try:
        _run_stages(stages, work, out, budget_s, env, cwd, py, status, log, t0)
    except BaseException:
        status["interrupted"] = True
        status["elapsed_s"] = time.monotonic() - t0
        publish(work, out, status)
        raise
    return status


def _run_stages(stages, work, out, budget_s, env, cwd, py, status, log, t0) -> None:
    for stage in stages:
        left = budget_s - (time.monotonic() - t0)
        if left < stage.min_s:
            status["stages"].append(
                {
                    "name": stage.name,
                    "what": stage.what,
                    "status": f"not started ({left:.0f} s left, needs {stage.min_s:.0f})",
                    "seconds": 0,
                    "deadline_s": 0,
                    "json": None,
                }
            )
            log(f"[runbook] {stage.name}: not started, {left:.0f} s left")
            continue
        deadline = min(stage.limit_s, left)
        log(f"[runbook] {stage.name}: {stage.what} (deadline {deadline:.0f} s)")
        status["running"] = stage.name  # left in place if the runbook is stopped during it
        record = run_stage(stage, work, deadline, env, cwd, py)
        del status["running"]
        status["stages"].append(record)
        status["elapsed_s"] = time.monotonic() - t0
        publish(work, out, status)
        log(f"[runbook] {stage.name}: {record['status']} in {record['seconds']} s")

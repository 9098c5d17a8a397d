"""Soak: many concurrent ``greentrain run`` jobs for minutes, with random SIGKILLs of wrappers
and jobs; counts records and metrics lost and processes left behind (targets: 0, 0, 0).

Each of ``--concurrency`` slots launches runs back to back for ``--minutes``. A run's job starts
a worker process, logs ``--metrics`` metrics over 1-4 s and appends each logged step to a file
of its own (what the job *sent*). With probability ``--kill-rate`` the driver SIGKILLs the
wrapper (its watchdog must stop the job and mark the record) or the job (the record must say
it failed), at a random moment. Afterwards:

* records lost: runs whose job started (it wrote its pids) or whose wrapper was not killed,
  without a record in the store; a wrapper killed before its job started ran nothing and
  needs none (counted apart, as ``killed_before_job_started``);
* metrics lost: steps a job sent minus steps stored, over runs whose wrapper was not killed
  (a killed wrapper loses what was in flight by definition; its record is still marked);
* processes left behind: job and worker pids still alive;
* records still ``running`` after a reader looked (a dead wrapper must be marked).

Usage::

    python benchmarks/soak.py [--concurrency 8] [--minutes 2] [--kill-rate 0.3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

JOB = """
import os, subprocess, sys, time
from greentrain import client
log, pids, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
w = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(pids, "w") as f:
    f.write(f"{os.getpid()} {w.pid}\\n")
for i in range(n):
    client.log(step=i, loss=1.0 / (i + 1))
    with open(log, "a") as f:
        f.write(f"{i}\\n")
    time.sleep(seconds / n)
w.terminate()
w.wait()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Soak:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder, self.args = folder, args
        self.store = folder / "soak.db"
        self.launched: list[dict] = []
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)

    def one(self, slot: int, k: int) -> None:
        tag = f"s{slot}-{k}"
        log, pids = self.folder / f"{tag}.log", self.folder / f"{tag}.pids"
        argv = [sys.executable, "-m", "greentrain", "run", "--store", str(self.store),
                "--meter", "fake", "--sample-s", "0.5", "--grace", "2", "--tag", f"soak={tag}",
                "--", sys.executable, "-c", JOB, str(log), str(pids), str(self.args.metrics),
                str(self.rng.uniform(1.0, 4.0))]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        entry = {"tag": tag, "log": log, "pids": pids, "killed": None}
        with self.lock:
            self.launched.append(entry)
        if self.rng.random() < self.args.kill_rate:
            time.sleep(self.rng.uniform(0.5, 3.0))
            target = self.rng.choice(["wrapper", "job"])
            try:
                if target == "wrapper":
                    proc.send_signal(signal.SIGKILL)
                elif pids.exists() and pids.read_text().split():
                    os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)
                entry["killed"] = target
            except (ProcessLookupError, ValueError):
                pass
        proc.wait()

    def slot(self, slot: int, deadline: float) -> None:
        k = 0
        while time.monotonic() < deadline:
            self.one(slot, k)
            k += 1

    def run(self) -> dict:
        deadline = time.monotonic() + 60 * self.args.minutes
        threads = [threading.Thread(target=self.slot, args=(i, deadline))
                   for i in range(self.args.concurrency)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(5)  # watchdogs finish stopping jobs of killed wrappers
        return self.count()

    def count(self) -> dict:
        from greentrain.store import Store

        with Store(self.store) as st:  # a reader marks dead wrappers' records
            runs = {r["tags"].get("soak"): r for r in st.list_runs()}
        lost_metrics = left_behind = lost_records = before_start = 0
        for e in self.launched:
            started = e["pids"].exists()
            if started:
                left_behind += sum(_alive(int(p)) for p in e["pids"].read_text().split())
            run = runs.get(e["tag"])
            if run is None and not started and e["killed"] == "wrapper":
                before_start += 1
            elif run is None:
                lost_records += 1
            if run is None or e["killed"] == "wrapper":
                continue
            sent = len(e["log"].read_text().split()) if e["log"].exists() else 0
            lost_metrics += max(0, sent - len(run["metrics"]))
        return {
            "runs_launched": len(self.launched),
            "wrappers_killed": sum(e["killed"] == "wrapper" for e in self.launched),
            "jobs_killed": sum(e["killed"] == "job" for e in self.launched),
            "killed_before_job_started": before_start,
            "records_lost": lost_records,
            "metrics_lost": lost_metrics,
            "processes_left_behind": left_behind,
            "records_still_running": sum(r["status"] == "running" for r in runs.values()),
            "statuses": {
                s: sum(r["status"] == s for r in runs.values())
                for s in ("finished", "failed", "interrupted")
            },  # fmt: skip
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--kill-rate", type=float, default=0.3)
    ap.add_argument("--metrics", type=int, default=20, help="metrics each job logs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = Soak(Path(tmp), args).run()
    result["settings"] = vars(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    bad = result["records_lost"] + result["metrics_lost"] + result["processes_left_behind"]
    return 1 if bad or result["records_still_running"] else 0


if __name__ == "__main__":
    sys.exit(main())

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

Store faults (``--faults``, comma-separated), injected one after another every
``--fault-every`` seconds for ``--fault-s`` seconds each, while runs go on:

* ``freeze``: the PostgreSQL server SIGSTOPped (connections open, nothing answers), then
  SIGCONTinued (``--backend postgresql``);
* ``restart``: the PostgreSQL server stopped (port closed), then started again;
* ``full``: the store's disk filled (the store on a tmpfs of ``--disk-mb`` MB in a private mount
  namespace: the soak re-runs itself under ``unshare -m``), then freed (``--backend sqlite``);
* ``readers``: ``greentrain runs`` in a loop, all the time (readers that also land journals).

Then every fault is lifted, ``greentrain store sync`` lands what waits in journals, and the soak
reports, over runs whose wrapper was not killed: metric entries written (what the jobs sent),
stored, lost, doubled (rows beyond one per step), and wrappers that outlived their job by more
than ``--grace`` (a job writes its end instant, the driver notes its wrapper's exit). Targets:
0 lost, 0 doubled, 0 held up.

Usage::

    python benchmarks/soak.py [--concurrency 8] [--minutes 2] [--kill-rate 0.3] [--json]
    python benchmarks/soak.py --backend postgresql --faults freeze,restart,readers
    python benchmarks/soak.py --backend sqlite --faults full,readers   # needs root (mount)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
with open(log + ".end", "w") as f:
    f.write(repr(time.monotonic()))
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


class Faults:
    """Injects the store faults of ``--faults`` one after another (see the module docstring)."""

    def __init__(self, soak: Soak, names: list[str]) -> None:
        self.soak, self.names = soak, [n for n in names if n != "readers"]
        self.readers = "readers" in names
        self.injected: dict[str, int] = {n: 0 for n in names}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._inject, daemon=True)]
        if self.readers:
            self.threads.append(threading.Thread(target=self._read, daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _inject(self) -> None:
        k = 0
        while self.names and not self.stop.wait(self.soak.args.fault_every):
            name = self.names[k % len(self.names)]
            k += 1
            self.injected[name] += 1
            lift = getattr(self, f"_{name}")()
            try:
                self.stop.wait(self.soak.args.fault_s)
            finally:
                lift()

    def _freeze(self):
        self.soak.server.freeze()
        return self.soak.server.thaw

    def _restart(self):
        self.soak.server.pause()
        return self.soak.server.resume

    def _full(self):
        filler = self.soak.store_dir / "filler"
        with open(filler, "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * (1 << 20))
        return lambda: filler.unlink(missing_ok=True)

    def _read(self) -> None:
        while not self.stop.wait(1.0):
            self.injected["readers"] += 1
            subprocess.run([sys.executable, "-m", "greentrain", "runs", "--store",
                            self.soak.target], capture_output=True, timeout=600)  # fmt: skip


class Soak:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder, self.args = folder, args
        self.store_dir = folder / "store"
        self.store_dir.mkdir(exist_ok=True)
        self.store = self.store_dir / "soak.db"
        self.target = str(self.store)
        self.server = None
        self.launched: list[dict] = []
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        os.environ["GREENTRAIN_JOURNAL_DIR"] = str(folder / "journal")

    def one(self, slot: int, k: int) -> None:
        tag = f"s{slot}-{k}"
        log, pids = self.folder / f"{tag}.log", self.folder / f"{tag}.pids"
        argv = [sys.executable, "-m", "greentrain", "run", "--store", self.target,
                "--meter", "fake", "--sample-s", "0.5", "--grace", str(self.args.grace),
                "--tag", f"soak={tag}",
                "--", sys.executable, "-c", JOB, str(log), str(pids), str(self.args.metrics),
                str(self.rng.uniform(1.0, 4.0))]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        entry = {"tag": tag, "log": log, "pids": pids, "killed": None, "ended": None}
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
        entry["ended"] = time.monotonic()

    def slot(self, slot: int, deadline: float) -> None:
        k = 0
        while time.monotonic() < deadline:
            self.one(slot, k)
            k += 1

    def run(self) -> dict:
        faults = [f for f in self.args.faults.split(",") if f]
        if self.args.backend == "postgresql":
            sys.path.insert(0, str(ROOT / "tests"))
            from fixtures.pgserver import PgServer

            self.server = PgServer().start()
            self.target = self.server.tcp_url(self.server.new_database())
        try:
            from greentrain.store import Store

            Store(self.target).close()
            deadline = time.monotonic() + 60 * self.args.minutes
            threads = [threading.Thread(target=self.slot, args=(i, deadline))
                       for i in range(self.args.concurrency)]  # fmt: skip
            injector = Faults(self, faults)
            injector.start()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            injector.close()
            time.sleep(5)  # watchdogs finish stopping jobs of killed wrappers
            synced = subprocess.run([sys.executable, "-m", "greentrain", "store", "sync",
                                     "--store", self.target], capture_output=True, text=True,
                                    timeout=600)  # fmt: skip
            result = self.count()
            result["faults_injected"] = injector.injected
            result["sync"] = (synced.stdout + synced.stderr).strip().splitlines()[:3]
            return result
        finally:
            if self.server is not None:
                self.server.thaw()
                self.server.stop()

    def _rows(self) -> dict[str, list[int]]:
        """Run id -> the metric steps stored, every row (doubles included)."""
        from greentrain.store import Store

        with Store(self.target) as st:
            rows = st._conn.query("SELECT run_id, step FROM metrics ORDER BY seq")
        out: dict[str, list[int]] = {}
        for r in rows:
            out.setdefault(r["run_id"], []).append(r["step"])
        return out

    def count(self) -> dict:
        from greentrain.store import Store

        with Store(self.target) as st:  # a reader marks dead wrappers' records
            runs = {r["tags"].get("soak"): r for r in st.list_runs()}
        steps = self._rows()
        written = stored = doubled = 0
        held_up, overshoots = 0, []
        for e in self.launched:
            run = runs.get(e["tag"])
            if e["killed"] == "wrapper":
                continue
            sent = len(e["log"].read_text().split()) if e["log"].exists() else 0
            rows = steps.get(run["id"], []) if run is not None else []
            written, stored = written + sent, stored + len(set(rows))
            doubled += len(rows) - len(set(rows))
            end = Path(str(e["log"]) + ".end")
            if end.exists() and e["ended"] is not None:
                over = e["ended"] - float(end.read_text())
                overshoots.append(over)
                held_up += over > self.args.grace
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
            "backend": self.args.backend,
            "runs_launched": len(self.launched),
            "entries_written": written,
            "entries_stored": stored,
            "entries_doubled": doubled,
            "wrappers_outliving_job_by_more_than_grace": held_up,
            "wrapper_overshoot_s": {
                "median": round(statistics.median(overshoots), 2) if overshoots else None,
                "max": round(max(overshoots), 2) if overshoots else None,
            },
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
    ap.add_argument("--grace", type=float, default=2.0, help="each wrapper's --grace")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--faults", default="", help="freeze,restart,full,readers (see above)")
    ap.add_argument("--fault-every", type=float, default=15.0, help="seconds between faults")
    ap.add_argument("--fault-s", type=float, default=8.0, help="seconds each fault lasts")
    ap.add_argument("--disk-mb", type=int, default=64, help="the tmpfs under the store (full)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if "full" in args.faults and not os.environ.get("GREENTRAIN_SOAK_MOUNTED"):
        return _in_private_mount(args, argv)
    with tempfile.TemporaryDirectory() as tmp:
        mounted = Path(tmp) / "store"
        if os.environ.get("GREENTRAIN_SOAK_MOUNTED"):
            mounted.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk_mb}m", "soak",
                            str(mounted)], check=True)  # fmt: skip
        try:
            result = Soak(Path(tmp), args).run()
        finally:
            if os.environ.get("GREENTRAIN_SOAK_MOUNTED"):
                subprocess.run(["umount", "-l", str(mounted)], check=False)
    result["settings"] = vars(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    bad = result["records_lost"] + result["metrics_lost"] + result["processes_left_behind"]
    bad += result["entries_doubled"] + result["wrappers_outliving_job_by_more_than_grace"]
    return 1 if bad or result["records_still_running"] else 0


def _in_private_mount(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Run this soak again inside ``unshare -m`` (the ``full`` fault mounts a tmpfs)."""
    if shutil.which("unshare") is None:
        print("the full-disk fault needs unshare(1) and the right to mount", file=sys.stderr)
        return 2
    command = ["unshare", "-m", sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)]
    env = dict(os.environ, GREENTRAIN_SOAK_MOUNTED="1")
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Load on the run store: N concurrent writers (default 64, one process each, as 64 wrappers of a
cluster would be) write run records through greentrain's own write path (the harness's
:class:`~greentrain.run.applier.RunWrites`) for a minute, into PostgreSQL and into SQLite; then
every record and every metric is counted back.

Each writer repeats what one metered run writes: the run (``create_run``, meters), 4 windows,
each with 64 metrics entries in one batch (the harness flushes 64 at a time), a timeline sample
and its energy rows, then the run's energy, best figures and end. It writes as fast as the store
takes it (at most 100 writes queued), which is far more than real runs write.

Reported per backend: runs and metrics written, store writes (transactions) per second, metrics
per second, how many runs left writes waiting in their journal at the end (they land when the
store is next opened for writing, which the count below does first), and what was lost: runs
missing or not ``finished``, metrics missing. The target is zero lost.

    python benchmarks/store_load.py                          # both backends, 64 writers, 60 s
    python benchmarks/store_load.py --backend sqlite --writers 8 --seconds 10
    python benchmarks/store_load.py --store postgresql://me@db/runs   # a server of yours

Without ``--store``, PostgreSQL is a throwaway server started here (``tests/fixtures/
pgserver.py``: initdb in a temporary folder, UNIX socket, no fsync) and SQLite a temporary file.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = 4
BATCH = 64
MAX_PENDING = 100


def _energy(t: float) -> list[dict]:
    return [
        {"meter": "fake", "domain": d, "device": dev, "method": "fake", "energy_j": 100.0 * t,
         "detail": {}}
        for d, dev in (("gpu", "gpu:0"), ("gpu", "gpu:1"), ("cpu", "package-0"))
    ]  # fmt: skip


def _submit(q, write) -> int:
    """Queue one write, waiting while too many are queued; returns 1 (one write)."""
    while q.pending() > MAX_PENDING:
        time.sleep(0.005)
    q.submit(write)
    return 1


def one_run(st, run_id: str, name: str) -> tuple[int, int, bool]:
    """Write one run's record as the harness does (journal first, then the store):
    (metrics, writes, whether some writes were left in the journal)."""
    from greentrain.run.applier import RunWrites
    from greentrain.store import ops
    from greentrain.store.journal import JournalWriter

    q = RunWrites(JournalWriter(st.location, run_id), st)
    t0 = time.time()
    create = ops.CreateRun(run_id, name=name, command=["python", "train.py"], cwd="/w",
                           tags={"bench": "load"}, started_unix=t0)  # fmt: skip
    writes = _submit(q, create)
    writes += _submit(q, ops.SetMeters(run_id, meters=[{"meter": "fake", "available": True}]))
    for w in range(WINDOWS):
        writes += _submit(q, ops.BeginWindow(run_id, idx=w, name="epoch",
                                             started_unix=time.time()))  # fmt: skip
        entries = [{"step": w * BATCH + i, "window": "epoch", "time_s": time.time() - t0,
                    "metrics": {"loss": 1.0 / (i + 1), "acc": i / BATCH}}
                   for i in range(BATCH)]  # fmt: skip
        writes += _submit(q, ops.AddMetrics(run_id, entries=entries))
        writes += _submit(q, ops.EndWindow(run_id, idx=w, ended_unix=time.time(), duration_s=0.1,
                                           energy_rows=_energy(w + 1)))  # fmt: skip
        writes += _submit(q, ops.AddSample(run_id, seq=w, t=time.time(), cpu_s=0.1 * w))
    writes += _submit(q, ops.AddEnergy(run_id, window_idx=-1, rows=_energy(WINDOWS)))
    writes += _submit(q, ops.SetRunFields(run_id, fields={"best": {"gpu": {"energy_j": 1.0}}}))
    finish = ops.FinishRun(run_id, status="finished", exit_code=0, ended_unix=time.time(),
                           duration_s=time.time() - t0)  # fmt: skip
    writes += _submit(q, finish)
    left = not q.close(120.0)
    return WINDOWS * BATCH, writes, left


def writer(store: str, k: int, seconds: float, out: mp.Queue) -> None:
    """One writer process: runs until ``seconds`` are up, then reports what it wrote."""
    from greentrain.store import Store

    sys.setswitchinterval(0.0005)  # as the harness sets it (run/channel.py)
    st = Store(store)
    deadline = time.monotonic() + seconds
    runs, metrics, writes, journaled = [], 0, 0, 0
    while time.monotonic() < deadline:
        run_id = f"w{k:03d}r{len(runs):06d}"
        m, w, s = one_run(st, run_id, f"load-{k}")
        runs.append(run_id)
        metrics, writes, journaled = metrics + m, writes + w, journaled + int(s)
    st.close()
    out.put({"runs": runs, "metrics": metrics, "writes": writes, "journaled_runs": journaled})


def count(store: str) -> tuple[dict[str, str], dict[str, int]]:
    """(run id -> status, run id -> metrics) as stored (waiting journals landed first)."""
    from greentrain.store import Store

    with Store(store) as st:  # a writable open lands any journal left waiting
        conn = st._conn
        status = {r["id"]: r["status"] for r in conn.query("SELECT id, status FROM runs")}
        rows = conn.query("SELECT run_id, COUNT(*) AS n FROM metrics GROUP BY run_id")
        return status, {r["run_id"]: int(r["n"]) for r in rows}


def load(store: str, writers: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(store, k, seconds, out)) for k in range(writers)]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    status, stored_metrics = count(store)
    runs = [r for res in results for r in res["runs"]]
    lost_runs = sum(1 for r in runs if status.get(r) != "finished")
    sent = sum(res["metrics"] for res in results)
    lost_metrics = sent - sum(stored_metrics.get(r, 0) for r in runs)
    writes = sum(res["writes"] for res in results)
    return {"writers": writers, "seconds": elapsed, "runs": len(runs), "metrics": sent,
            "writes": writes, "writes_per_s": writes / elapsed, "metrics_per_s": sent / elapsed,
            "journaled_runs": sum(res["journaled_runs"] for res in results),
            "lost_runs": lost_runs, "lost_metrics": lost_metrics}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--store", help="a store to load (a file or a URL) instead of a new one")
    args = parser.parse_args()
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    server = None
    rows = []
    try:
        for backend in backends:
            store = args.store
            if store is None and backend == "sqlite":
                store = str(Path(tempfile.mkdtemp(prefix="greentrain-load-")) / "load.db")
            elif store is None:
                sys.path.insert(0, str(ROOT / "tests"))
                from fixtures.pgserver import PgServer

                server = PgServer().start()
                store = server.url(server.new_database("load"))
            print(f"{backend}: {args.writers} writers for {args.seconds:g} s ...", flush=True)
            rows.append((backend, load(store, args.writers, args.seconds)))
    finally:
        if server is not None:
            server.stop()
    print()
    print("| backend | writers | s | runs | metrics | writes/s | metrics/s | journaled runs | lost "
          "runs | lost metrics |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend, r in rows:
        print(f"| {backend} | {r['writers']} | {r['seconds']:.0f} | {r['runs']} | {r['metrics']} "
              f"| {r['writes_per_s']:.0f} | {r['metrics_per_s']:.0f} | {r['journaled_runs']} | "
              f"{r['lost_runs']} | {r['lost_metrics']} |")  # fmt: skip
    return 0 if all(r["lost_runs"] == 0 and r["lost_metrics"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Reads at scale: ``runs``, ``show RUN``, ``show GROUP``, an export and the app's Runs and Run
pages on synthetic stores of 1,000 and 10,000 runs with a 64-node group, on SQLite and
PostgreSQL; and what a 64-node job costs the store, measured on a small real group and scaled.

Stores (``tests/fixtures/synthetic_store.py``): N runs of their own on 16 hosts plus one group
of 64 nodes (one host each), each run written through the store's write path with 10 windows
(epochs) and their energy rows, 50 metrics entries, a sample every 10 s of its 600 s (61), its
energy and its end. The PostgreSQL store holds the same rows, copied from the SQLite one.

Each command runs in this process through the CLI's own entry point (opening the store,
choosing and reading the runs, printing; the interpreter's start-up is not in it:
``benchmarks/startup_latency.py`` measures that), its output discarded; the app's pages through
Streamlit's AppTest (``benchmarks/app_reads.py``); the median of
``--repeats`` runs after one warm-up. Targets on the project's 2-core machine: ``runs`` on
10,000 runs <= 1 s, ``show`` of a 64-node group <= 0.5 s.

The cost of a 64-node job (``--cost``): two real ``greentrain run`` wrappers of one SLURM step
(``--meter fake``, the default sample period), each job logging one metric a second, into a
PostgreSQL store for ``--cost-seconds``; measured: the connections the store saw, its
transactions per second, the bytes its tables grew by; scaled to 64 nodes (x32) and to a day.

    python benchmarks/store_read.py                       # both backends, 1,000 and 10,000 runs
    python benchmarks/store_read.py --backend sqlite --sizes 1000 --repeats 3 --no-cost

Writes ``reports/store-read/store_read.json`` and ``.md`` (the table).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from app_reads import page_seconds  # noqa: E402

TABLES = ("runs", "energy", "windows", "metrics", "meters", "samples", "journal_applied")


def build(path: str, runs: int, nodes: int) -> float:
    """The SQLite store of ``runs`` runs and a ``nodes``-node group; seconds it took."""
    from fixtures.synthetic_store import Shape, scale_layout, write_runs

    t = time.perf_counter()
    write_runs(path, scale_layout(runs, group_nodes=nodes, groups=1), Shape(), batch_runs=50)
    return time.perf_counter() - t


def copy_to_postgres(sqlite_path: str, url: str) -> float:
    """The same rows in the PostgreSQL database ``url`` (schema made by greentrain)."""
    import sqlite3

    import psycopg

    from greentrain.store import Store

    t = time.perf_counter()
    Store(url).close()
    src = sqlite3.connect(sqlite_path)
    with psycopg.connect(url) as dst:
        for table in TABLES:
            cur = src.execute(f"SELECT * FROM {table}")
            cols = [d[0] for d in cur.description]
            names = ", ".join('"' + c + '"' for c in cols)
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(cols))})"
            while rows := cur.fetchmany(5000):
                with dst.cursor() as c:
                    c.executemany(sql, rows)
        dst.execute(
            "SELECT setval(pg_get_serial_sequence('metrics', 'seq'), max(seq)) FROM metrics"
        )
        dst.execute("ANALYZE")
    src.close()
    return time.perf_counter() - t


def timed(argv: list[str], repeats: int) -> dict:
    """Median seconds of the CLI command ``argv`` in this process (output discarded)."""
    from greentrain.cli import main

    times = []
    for i in range(repeats + 1):
        out = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = main(argv)
        if code != 0:
            raise SystemExit(f"{argv} failed ({code})")
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats,
            "output_lines": out.getvalue().count("\n")}  # fmt: skip


def measure(store: str, repeats: int) -> dict:
    newest_run = "r00000"
    from greentrain.store.reader import StoreReader

    with StoreReader(store, read_only=True) as st:
        newest_run = st.list_runs(status="finished", name="exp-7", limit=1)[0]["id"]
    return {
        "runs": timed(["runs", "--store", store], repeats),
        "runs --status failed": timed(["runs", "--store", store, "--status", "failed"], repeats),
        "show RUN": timed(["show", "--store", store, newest_run], repeats),
        "show GROUP (64 nodes)": timed(["show", "--store", store, "group-00"], repeats),
        "export csv --tag sweep=s3": timed(
            ["export", "--store", store, "-f", "csv", "--allow-fake", "--tag", "sweep=s3"],
            max(1, repeats // 2),
        ),
        "app: Runs page": page_seconds(store, "runs", repeats),
        "app: Run page": page_seconds(store, "run", repeats, run=newest_run),
    }


JOB = """
import os, time
from greentrain import client
t = time.monotonic()
lead = os.environ.get("SLURM_PROCID") == "0"  # as a job does: global rank 0 logs
while time.monotonic() - t < {seconds}:
    if lead:
        client.log(loss=1.0, step=int(time.monotonic() - t))
    time.sleep(1.0)
"""
STREAMS = ("samples", "metrics", "windows", "energy")  # rows a run adds while it goes
KEY = "journal_applied"  # one row per write applied
SAMPLE_S = 10.0  # the recorder's default sample period


def _rows_of(server, db: str, table: str) -> tuple[int, int]:
    """(rows, bytes of their tuples) of ``table``."""
    (row,) = server.sql(f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t",
                        db)  # fmt: skip
    return int(row[0]), int(row[1])


def group_cost(server, seconds: float) -> dict:
    """Two real wrappers of one SLURM step into a PostgreSQL store, measured, scaled to 64."""
    db = server.new_database("cost")
    url = server.url(db)
    from greentrain.store import Store

    Store(url).close()

    def commits() -> int:
        sql = f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"
        return int(server.sql(sql)[0][0])

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.py"
        job.write_text(JOB.format(seconds=seconds))
        env = dict(os.environ, SLURM_JOB_ID="77", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2",
                   GREENTRAIN_JOURNAL_DIR=str(Path(tmp) / "journal"),
                   GREENTRAIN_LOCK_DIR=str(Path(tmp) / "locks"))  # fmt: skip
        commits0 = commits()
        t0 = time.monotonic()
        wrappers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "greentrain",
                    "run",
                    "--store",
                    url,
                    "--meter",
                    "fake",
                    "--name",
                    "cost",
                    "--",
                    sys.executable,
                    str(job),
                ],
                env=dict(env, SLURM_PROCID=str(rank)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for rank in (0, 1)
        ]
        peak = 0
        while any(w.poll() is None for w in wrappers):
            n = server.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'")
            peak = max(peak, int(n[0][0]))  # (this query is on another database)
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        transactions = commits() - commits0
    tables = {t: _rows_of(server, db, t) for t in (*STREAMS, "runs", "meters", KEY)}
    writes, grew = _by_rank(server, db, f"SELECT run_id, count(*) FROM {KEY} GROUP BY run_id"), {}
    for t in (*STREAMS, KEY):
        sql = f"SELECT run_id, sum(pg_column_size(t.*)) FROM {t} t GROUP BY run_id"
        for rank, b in _by_rank(server, db, sql).items():
            grew[rank] = grew.get(rank, 0) + b
    samples = _by_rank(server, db, "SELECT run_id, count(*) FROM samples GROUP BY run_id")
    sample_bytes = _by_rank(
        server, db, "SELECT run_id, sum(pg_column_size(t.*)) FROM samples t GROUP BY run_id"
    )
    day, lead, other = 86400, 0, 1
    # while a job runs, every node stores a sample (as big as the bigger of the two: on their
    # one host, one wrapper won the election and metered the devices) and its key every 10 s; the
    # lead adds its metrics and their keys. A run's start and end are counted apart (once).
    key_b = tables[KEY][1] / max(tables[KEY][0], 1)
    sample_b = max(sample_bytes.get(r, 0) / max(samples.get(r, 1), 1) for r in (lead, other))
    lead_b_s = (
        tables["metrics"][1] + (writes.get(lead, 0) - writes.get(other, 0)) * key_b
    ) / elapsed
    node_b_s = (sample_b + key_b) / SAMPLE_S
    once_b = min(grew.get(r, 0) - sample_bytes.get(r, 0) - samples.get(r, 0) * key_b
                 for r in (lead, other))  # fmt: skip
    steady_w = (63 * samples.get(other, 0) + writes.get(lead, 0) - writes.get(other, 0)
                + samples.get(other, 0)) / elapsed  # fmt: skip
    return {
        "measured": {
            "nodes": 2, "hosts": 1, "seconds": round(elapsed, 1), "meter": "fake",
            "peak_connections": peak, "transactions_incl_reads": transactions,
            "writes_by_rank": writes, "samples_by_rank": samples,
            "tuple_bytes_added_by_rank": grew,
            "rows_and_tuple_bytes": {t: {"rows": r, "bytes": b} for t, (r, b) in tables.items()},
        },
        "scaled_to_64_nodes": {
            "connections": peak * 32,
            "writes_per_s_while_running": round(steady_w, 1),
            "writes_per_node_at_start_and_end": writes.get(other, 0) - samples.get(other, 0),
            "transactions_per_s_incl_reads": round(transactions / elapsed * 32, 1),
            "bytes_per_day": round((64 * node_b_s + lead_b_s) * day),
            "bytes_per_sample": round(sample_b),
            "sample_bytes_by_rank": sample_bytes,
            "bytes_per_node_at_start_and_end": round(once_b),
            "note": (
                "scaled from 2 nodes of one host to 64 and to 24 h at the default sample "
                "period (10 s): connections x32; writes while running = a sample from every "
                "node every 10 s + the lead's metric flushes; bytes a day = every node's "
                "samples (each as big as the measured node that metered the devices) and "
                "keys + the lead's metrics and keys; a run's start and end (writes, bytes) "
                "once per node, apart; bytes = tuple bytes (pg_column_size), without indexes "
                "and page overhead; the fake meter's 3 readings in each sample"
            ),
        },
    }  # fmt: skip


def _by_rank(server, db: str, sql: str) -> dict[int, int]:
    """``run_id -> n`` rows of ``sql`` keyed by the run's group rank instead."""
    ranks = {r: int(k or 0) for r, k in server.sql("SELECT id, group_rank FROM runs", db)}
    return {ranks[run_id]: int(n) for run_id, n in server.sql(sql, db) if run_id in ranks}


def table(results: dict) -> str:
    lines = ["| backend | runs in store | command | median s | target |", "|---|---:|---|---:|---|"]
    targets = {"runs": 1.0, "show GROUP (64 nodes)": 0.5}
    for key, res in results["reads"].items():
        backend, size = key.split(":")
        for command, r in res["commands"].items():
            target = targets.get(command)
            mark = (
                ""
                if target is None
                else f"<= {target} s: " + ("met" if r["median_s"] <= target else "MISSED")
            )
            lines.append(
                f"| {backend} | {int(size):,} | `{command}` | {r['median_s']:.3f} | {mark} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cost", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--cost-only",
        action="store_true",
        help="measure the cost only, replacing it in the existing JSON",
    )
    ap.add_argument("--cost-seconds", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "reports" / "store-read"))
    args = ap.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                     "argv": sys.argv[1:], "reads": {}}  # fmt: skip
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if "postgresql" in backends or args.cost:
                from fixtures.pgserver import PgServer

                server = PgServer().start()
            if args.cost_only:
                old = Path(args.out) / "store_read.json"
                results = json.loads(old.read_text()) if old.exists() else results
                backends = []
            for size in (int(s) for s in args.sizes.split(",") if backends):
                path = str(Path(tmp) / f"s{size}.db")
                built = build(path, size, args.nodes)
                print(f"built {size} runs + a {args.nodes}-node group in {built:.0f} s", flush=True)
                for backend in backends:
                    store = path
                    if backend == "postgresql":
                        store = server.url(server.new_database(f"r{size}"))
                        print(f"copied to PostgreSQL in {copy_to_postgres(path, store):.0f} s",
                              flush=True)  # fmt: skip
                    res = measure(store, args.repeats)
                    results["reads"][f"{backend}:{size}"] = {"build_s": built, "commands": res}
                    for command, r in res.items():
                        print(
                            f"{backend:10} {size:6} {command:28} {r['median_s']:.3f} s", flush=True
                        )
            if args.cost:
                results["cost_64_node_job"] = {**group_cost(server, args.cost_seconds),
                                               "argv": sys.argv[1:]}  # fmt: skip
                print(json.dumps(results["cost_64_node_job"], indent=2), flush=True)
        finally:
            if server is not None:
                server.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "store_read.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "store_read.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()

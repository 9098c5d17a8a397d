"""Windows lost in a burst: a job opens and closes ``--windows`` windows with no pause
(``client.window`` in a tight loop) and exits, under ``greentrain run --meter fake``; each of
``--runs`` runs reports the windows stored, the windows lost, the boundaries clipped to the
run's end, the entries the record counts as dropped (by reason), and the wrapper's wall time.

Usage::

    python benchmarks/window_burst.py [--windows 5000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB = """
import sys
from greentrain import client
for i in range(int(sys.argv[1])):
    with client.window("w", index=i):
        pass
"""


def one_run(folder: Path, windows: int) -> dict:
    """One burst under ``greentrain run``; what its record holds."""
    from greentrain.store import Store

    job, store = folder / "burst.py", folder / "burst.db"
    job.write_text(JOB)
    for leftover in folder.glob("burst.db*"):
        leftover.unlink()
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--", sys.executable, str(job), str(windows)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    wall_s = time.monotonic() - started
    with Store(store) as st:
        rec = st.get_run(st.list_runs()[0]["id"])
    clipped = sum(e.get("count", 0) for e in rec["events"] if "clipped" in e["event"])
    stored = sum(1 for w in rec["windows"] if w.get("ended_at"))
    return {"windows": windows, "stored": stored, "lost": windows - stored,
            "clipped_boundaries": clipped, "dropped": rec["client_drops"],
            "wall_s": round(wall_s, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="window-burst-") as tmp:
        rows = [one_run(Path(tmp), args.windows) for _ in range(args.runs)]
    if args.json:
        print(json.dumps({"load_avg": os.getloadavg()[0], "runs": rows}, indent=1))
        return
    print(f"load average {os.getloadavg()[0]:.1f}")
    for row in rows:
        print(f"{row['stored']}/{row['windows']} windows stored, {row['lost']} lost, "
              f"{row['clipped_boundaries']} boundaries clipped, dropped {row['dropped']}, "
              f"{row['wall_s']} s")  # fmt: skip


if __name__ == "__main__":
    main()

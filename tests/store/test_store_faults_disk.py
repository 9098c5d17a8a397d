"""A full disk under the store is a passing fault: the job runs and exits 0, the wrapper exits
within ``--grace``, the record's end waits in the run's journal, and once there is room
``greentrain store sync`` lands the whole record -- finished, exit 0, its energy, every metric
once, and no false "wrapper died". Real fault: the store on a 4 MB tmpfs that the job fills
(in a private mount namespace, ``unshare -m``; skipped where mounting is not permitted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

PY = sys.executable
JOB = """
import time
from greentrain import client
for i in range(50):
    client.log(step=i, loss=1.0 / (i + 1))
    time.sleep(0.01)
time.sleep(1.5)  # the first metrics land before the disk fills
try:
    with open({ckpt!r}, "wb") as fh:  # an 8 MB checkpoint beside a store on a 4 MB disk
        fh.write(b"x" * (8 << 20))
except OSError:
    pass
for i in range(50, 100):
    client.log(step=i, loss=1.0 / (i + 1))
    time.sleep(0.01)
time.sleep(1.0)
"""
SCENARIO = """
set -u
mount -t tmpfs -o size=4m greentrain-full "$DISK" || exit 90
"$PY" -m greentrain run --store "$DISK/g.db" --meter fake --grace 2 --sample-s 0.5 -- \\
    "$PY" -c "$JOB" 2> "$OUT/run.err"
echo $? > "$OUT/run.rc"
df -k "$DISK" | tail -1 > "$OUT/df"
rm -f "$DISK/ckpt"
"$PY" -m greentrain store sync --store "$DISK/g.db" > "$OUT/sync.out" 2>&1
"$PY" -m greentrain runs --store "$DISK/g.db" --json > "$OUT/runs.json" 2>> "$OUT/sync.out"
"$PY" - "$DISK/g.db" > "$OUT/metrics.json" <<'PYEOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rid = db.execute("SELECT id FROM runs").fetchone()[0]
steps = [r[0] for r in db.execute("SELECT step FROM metrics WHERE run_id = ? ORDER BY seq", (rid,))]
print(json.dumps({"id": rid, "steps": steps}))
PYEOF
"""


def _can_mount() -> str:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m t /mnt"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    return "" if probe.returncode == 0 else f"mounting a tmpfs is not permitted: {probe.stderr}"


@pytest.mark.skipif(bool(_can_mount()), reason=_can_mount() or "n/a")
def test_a_full_disk_keeps_the_record_end_in_the_journal_and_sync_lands_it(tmp_path):
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {"DISK": str(disk), "OUT": str(out), "PY": PY,
           "JOB": JOB.format(ckpt=str(disk / "ckpt"))}  # fmt: skip
    done = subprocess.run(["unshare", "-m", "bash", "-c", SCENARIO], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env})  # fmt: skip
    assert done.returncode != 90, done.stderr
    err = (out / "run.err").read_text()
    assert (out / "run.rc").read_text().strip() == "0", err
    assert "disk is full" in err and ".jnl" in err and "Traceback" not in err
    assert int((out / "df").read_text().split()[3]) < 64  # the disk really was full
    sync = (out / "sync.out").read_text()
    assert "1 journals landed" in sync, sync
    (run,) = json.loads((out / "runs.json").read_text())
    assert run["status"] == "finished" and run["exit_code"] == 0, run
    assert run["energy"]["cpu"]["energy_j"] > 0
    assert all(e["event"] != "wrapper died" for e in run.get("events") or [])
    assert json.loads((out / "metrics.json").read_text())["steps"] == list(range(100))

"""A wrapper SIGKILLed at any point of its run loses nothing it had journalled and stores
nothing twice: what happened (a signal forwarded) is journalled the moment it happens, the
watchdog and ``greentrain store sync`` (four at once, racing the watchdog) land the journal,
and every metric, sample and event is stored exactly once. Real processes, real signals."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.pgserver import raw_rows

from greentrain.store import Store, journal_dir
from greentrain.store.journal import pending_journals

pytestmark = pytest.mark.slow

PY = sys.executable
STEPS = 150
JOB = """
import signal, sys, time
from greentrain import client
ready, got = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGUSR1, lambda s, f: open(got, "w").close())
open(ready, "w").close()
for i in range({steps}):
    client.log(step=i, loss=1.0 / (i + 1))
    time.sleep(0.01)
"""


def _wrapper(store: Path, tmp: Path, *, steps: int = STEPS) -> subprocess.Popen:
    argv = [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
            "--grace", "1", "--sample-s", "0.2", "--", PY, "-c", JOB.format(steps=steps),
            str(tmp / "ready"), str(tmp / "got")]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip


def _until(condition, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _settled(store: Path) -> bool:
    """No journal waits for the store and no run reads as running (a dead wrapper's run is
    marked by its watchdog, or by this reader once its journal has landed)."""
    if pending_journals(store):
        Store(store).close()  # lands what no live process holds
        return False
    with Store(store) as st:
        return all(r["status"] != "running" for r in st.list_runs())


def _journalled(store: Path, text: bytes) -> bool:
    return any(text in p.read_bytes() for p in journal_dir(store).glob("*.jnl*"))


def test_a_wrapper_killed_after_forwarding_a_signal_leaves_that_event_in_the_store(tmp_path):
    store = tmp_path / "g.db"
    wrapper = _wrapper(store, tmp_path, steps=100_000)
    _until((tmp_path / "ready").exists, "the job started")
    wrapper.send_signal(signal.SIGUSR1)
    _until((tmp_path / "got").exists, "the job got the forwarded signal")
    _until(lambda: _journalled(store, b'"signal forwarded"'), "the event was journalled", 30)
    wrapper.kill()
    wrapper.wait(timeout=60)
    _until(lambda: _settled(store), "the watchdog marked the run")
    synced = subprocess.run([PY, "-m", "greentrain", "store", "sync", "--store", str(store)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    [run] = Store(store).list_runs()
    events = [e["event"] for e in run["events"]]
    assert run["status"] == "interrupted"
    assert events.count("signal forwarded") == 1 and events.count("wrapper died") == 1, events
    assert next(e for e in run["events"] if e["event"] == "signal forwarded")["signal"] == "SIGUSR1"


def test_metrics_logged_before_a_quiet_spell_are_journalled_and_survive_a_killed_wrapper(
    tmp_path,
):
    """Five metrics, then the job goes quiet: they are journalled (and landed) within about a
    second, not held in memory until a 64th metric or the run's end."""
    store, ready = tmp_path / "g.db", tmp_path / "ready"
    Store(store).close()
    job = ("import time\nfrom greentrain import client\n"
           "for i in range(5):\n    client.log(step=i, loss=1.0)\n"
           f"open({str(ready)!r}, 'w').close()\ntime.sleep(300)\n")  # fmt: skip
    wrapper = subprocess.Popen([PY, "-m", "greentrain", "run", "--store", str(store), "--meter",
                                "fake", "--grace", "1", "--", PY, "-c", job],
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    _until(ready.exists, "the job logged")
    landed = "SELECT step FROM metrics ORDER BY seq"
    _until(lambda: len(raw_rows(str(store), landed)) == 5, "the metrics landed", 30)
    wrapper.kill()
    wrapper.wait(timeout=60)
    _until(lambda: _settled(store), "the watchdog marked the run")
    assert [r[0] for r in raw_rows(str(store), landed)] == [0, 1, 2, 3, 4]
    assert raw_rows(str(store), "SELECT status FROM runs") == [("interrupted",)]


def test_a_wrapper_killed_at_random_points_stores_every_entry_once(tmp_path):
    """Six kill points from the wrapper's start-up to its job's end; after each, four
    ``greentrain store sync`` at once race the watchdog. Metrics stored are a prefix of the
    steps logged (none twice, none skipped), samples likewise, and an interrupted run has one
    "wrapper died" event however many processes found the wrapper dead."""
    rng = random.Random(19)
    points = sorted(rng.uniform(0.0, 3.5) for _ in range(6))
    for k, delay in enumerate(points):
        tmp = tmp_path / f"p{k}"
        tmp.mkdir()
        store = tmp / "g.db"
        Store(store).close()
        wrapper = _wrapper(store, tmp)
        time.sleep(delay)
        wrapper.kill()
        wrapper.wait(timeout=60)
        syncs = [subprocess.Popen([PY, "-m", "greentrain", "store", "sync", "--store",
                                   str(store)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(4)]  # fmt: skip
        errs = [p.communicate(timeout=120)[1] for p in syncs]
        assert all(p.returncode == 0 for p in syncs), errs
        _until(lambda store=store: _settled(store), f"kill at {delay:.2f} s settled")
        runs = raw_rows(str(store), "SELECT id, status, events FROM runs")
        if not runs:  # killed before its first write was journalled: nothing to keep
            continue
        [(rid, status, events)] = runs
        steps = [r[0] for r in raw_rows(str(store), "SELECT step FROM metrics WHERE run_id = ?"
                                        " ORDER BY seq", (rid,))]  # fmt: skip
        seqs = [r[0] for r in raw_rows(str(store), "SELECT seq FROM samples WHERE run_id = ?"
                                       " ORDER BY seq", (rid,))]  # fmt: skip
        names = [e["event"] for e in json.loads(events or "[]")]
        where = f"kill at {delay:.2f} s"
        assert steps == list(range(len(steps))), where
        assert seqs == list(range(len(seqs))), where
        assert status in ("interrupted", "finished"), (where, status)
        assert names.count("wrapper died") == (status == "interrupted") or (
            status == "finished" and names.count("wrapper died") <= 1  # killed after its end
        ), (where, names)
        assert not pending_journals(store), where

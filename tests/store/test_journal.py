"""The run journal and its one apply path: entries land exactly once however often, by however
many processes, and after whatever crash; a torn entry is reported and skipped; durations come
from the monotonic clock whatever the wall clock does; liveness is not fooled by a clock step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures.pgserver import raw_rows

from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command, track
from greentrain.run.recorder import Clock
from greentrain.store import Store, journal_dir, locate, ops
from greentrain.store.journal import JournalWriter, journal_root, pending_journals, read_journal
from greentrain.store.liveness import pid_alive, process_started, start_ticks

PY = sys.executable
RUN = "j00000000001"
STEPS = 120


def _journal(target: str, steps: int = STEPS, finish: bool = True) -> JournalWriter:
    """A run's journal as a wrapper leaves it when the store never answered."""
    journal = JournalWriter(locate(target), RUN)
    journal.append(ops.CreateRun(RUN, name="j", command=["x"], cwd="/", started_unix=100.0,
                                 host="elsewhere", pid=1))  # fmt: skip
    for step in range(steps):
        entry = {"step": step, "window": None, "time_s": step * 0.1, "metrics": {"loss": step}}
        journal.append(ops.AddMetrics(RUN, entries=[entry]))
    journal.append(ops.AddEvents(RUN, events=[{"t": 101.0, "event": "note"}]))
    if finish:
        journal.append(ops.FinishRun(RUN, status="finished", exit_code=0, ended_unix=112.0,
                                     duration_s=12.0))  # fmt: skip
    journal.close(remove=False)
    return journal


def _steps(target: str) -> list[int]:
    return [r[0] for r in raw_rows(str(target), "SELECT step FROM metrics WHERE run_id = ?"
                                   " ORDER BY seq", (RUN,))]  # fmt: skip


def _importer(target: str, *, batch: int = 1, stall_after: int | None = None, marker=None) -> str:
    """A process that syncs the store's journals ``batch`` entries per transaction; with
    ``stall_after`` it writes ``marker`` after that many transactions and waits to be killed."""
    return (
        "import sys, time\n"
        "from greentrain.store import writer\n"
        f"writer.APPLY_BATCH = {batch}\n"
        "calls = 0\n"
        "apply = writer.Store.apply_entries\n"
        "def counted(self, entries):\n"
        "    global calls\n"
        "    done = apply(self, entries)\n"
        "    calls += 1\n"
        f"    if {stall_after!r} is not None and calls == {stall_after!r}:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "        time.sleep(600)\n"
        "    return done\n"
        "writer.Store.apply_entries = counted\n"
        f"with writer.Store({target!r}, sync=False) as st:\n"
        "    r = st.sync_journals()\n"
        "print(r.journals, r.stored, r.already, len(r.kept))\n"
    )


def test_a_journal_lands_once_and_applying_it_again_changes_nothing(store_target):
    Store(store_target).close()
    journal = _journal(store_target)
    entries = read_journal(journal.path).entries
    with Store(store_target, sync=False) as st:
        first = st.apply_entries(entries)
        second = st.apply_entries(entries)  # a retry of a write whose answer was lost
        report = st.sync_journals()  # and the journal itself, once more
        run = st.get_run(RUN)
    assert (first.stored, first.already) == (len(entries), 0)
    assert (second.stored, second.already) == (0, len(entries))
    assert report.journals == 1 and report.stored == 0 and report.already == len(entries)
    assert _steps(store_target) == list(range(STEPS))
    assert [e["event"] for e in run["events"]] == ["note"]
    assert run["status"] == "finished" and run["duration_s"] == 12.0
    assert not pending_journals(store_target)


def test_four_concurrent_importers_of_one_journal_store_each_entry_once(store_target):
    Store(store_target).close()
    _journal(store_target)
    procs = [subprocess.Popen([PY, "-c", _importer(store_target)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    landed = [tuple(map(int, o[0].split())) for o in outs]
    assert sum(r[0] for r in landed) == 1  # one importer claimed it; the others saw it taken
    assert _steps(store_target) == list(range(STEPS))
    assert not pending_journals(store_target)


def test_concurrent_appliers_of_the_same_entries_store_each_once_by_their_keys(store_target):
    """Without the claim (a wrapper's thread coming back after sync took over), the keys alone
    keep every entry single."""
    Store(store_target).close()
    journal = _journal(store_target)
    script = (
        "import sys\nfrom greentrain.store import Store\n"
        "from greentrain.store.journal import read_journal\nfrom pathlib import Path\n"
        f"entries = read_journal(Path({str(journal.path)!r})).entries\n"
        f"with Store({store_target!r}, sync=False) as st:\n"
        "    for i in range(0, len(entries), 7):\n"
        "        st.apply_entries(entries[i:i + 7])\n"
    )
    procs = [subprocess.Popen([PY, "-c", script], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert _steps(store_target) == list(range(STEPS))
    keys = raw_rows(str(store_target), "SELECT COUNT(*) FROM journal_applied WHERE run_id = ?",
                    (RUN,))  # fmt: skip
    assert keys[0][0] == len(read_journal(journal.path).entries)


def test_an_importer_killed_mid_apply_leaves_a_claim_the_next_sync_finishes(store_target, tmp_path):
    Store(store_target).close()
    _journal(store_target)
    marker = tmp_path / "stalled"
    proc = subprocess.Popen([PY, "-c", _importer(store_target, stall_after=40, marker=marker)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "no stall"
    os.kill(proc.pid, signal.SIGKILL)  # between two entries' transactions
    proc.wait(timeout=60)
    claimed = pending_journals(store_target)
    assert len(claimed) == 1 and ".claimed-" in claimed[0].name
    assert len(_steps(store_target)) == 39  # entry 1 created the run, 39 metrics landed
    with Store(store_target, sync=False) as st:
        report = st.sync_journals()
    assert report.journals == 1 and report.already == 40
    assert _steps(store_target) == list(range(STEPS))
    assert not pending_journals(store_target)


def test_a_torn_last_entry_is_reported_and_skipped_and_the_rest_lands(store_target, capsys):
    Store(store_target).close()
    journal = _journal(store_target, finish=False)
    with open(journal.path, "ab") as fh:  # the wrapper died mid-write: half a line
        fh.write(b'0badc0de {"n": 999, "op": "finish_run", "args": {"run_id": "j0')
    with Store(store_target, sync=False) as st:
        report = st.sync_journals()
        run = st.get_run(RUN)
    assert len(report.torn) == 1 and "cut short" in report.torn[0]
    assert report.journals == 1 and report.stored == STEPS + 2
    assert _steps(store_target) == list(range(STEPS)) and run["status"] != "finished"
    out = subprocess.run([PY, "-m", "greentrain", "store", "sync", "--store", str(store_target)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "no journals waiting" in out.stdout  # landed: gone


def test_a_damaged_entry_mid_journal_is_skipped_and_named(tmp_path):
    target = str(tmp_path / "g.db")
    Store(target).close()
    journal = _journal(target)
    lines = journal.path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"loss":3', b'"loss":9')  # checksum no longer matches
    journal.path.write_bytes(b"\n".join(lines))
    parsed = read_journal(journal.path)
    assert len(parsed.torn) == 1 and "line 6 fails its checksum" in parsed.torn[0]
    with Store(target, sync=False) as st:
        st.sync_journals()
    assert _steps(target) == [s for s in range(STEPS) if s != 3]


def test_an_entry_the_store_refuses_is_named_and_the_rest_of_its_journal_lands(store_target):
    Store(store_target).close()
    journal = JournalWriter(locate(store_target), RUN)
    journal.append(ops.CreateRun(RUN, name="j", command=["x"], cwd="/", started_unix=100.0))
    for step in range(2):
        entry = {"step": step, "window": None, "time_s": 0.1, "metrics": {"loss": step}}
        journal.append(ops.AddMetrics(RUN, entries=[entry]))
        journal.append(ops.AddEvents("gone00000001", events=[{"t": 1.0, "event": "x"}]))
    journal.append(ops.FinishRun(RUN, status="finished", exit_code=0, ended_unix=101.0))
    journal.close(remove=False)
    with Store(store_target, sync=False) as st:
        report = st.sync_journals()
        run = st.get_run(RUN)
    assert report.stored == 4 and len(report.refused) == 2  # each refused entry named, once
    first = report.refused[0]
    assert "entry 3 (add_events)" in first and "no run gone00000001" in first
    assert _steps(store_target) == [0, 1] and run["status"] == "finished"
    assert (journal_dir(store_target) / f"{RUN}.jnl.failed").is_file()  # kept, never blocking
    assert not pending_journals(store_target)


def test_the_journal_is_node_local_private_and_records_its_store_without_a_password(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("GREENTRAIN_JOURNAL_DIR")
    monkeypatch.delenv("TMPDIR", raising=False)
    assert journal_root() == Path("/tmp") / f"greentrain-journal-{os.getuid()}"
    monkeypatch.setenv("GREENTRAIN_JOURNAL_DIR", str(tmp_path / "j"))
    url = "postgresql://u:s3cret-pw@db.example:5432/runs"
    journal = JournalWriter(locate(url), "abc")
    journal.close(remove=False)
    assert journal.path.parent == journal_dir(url)
    assert oct(journal.path.parent.stat().st_mode & 0o777) == "0o700"
    header = json.loads(journal.path.read_text().split(" ", 1)[1])
    assert header["args"]["store"] == "postgresql://u:***@db.example:5432/runs"
    assert "s3cret-pw" not in journal.path.read_text()


class SteppingClock:
    """A wall clock that jumps ``step_s`` ahead once ``after_s`` monotonic seconds passed."""

    def __init__(self, step_s: float, after_s: float) -> None:
        self.start = time.monotonic()
        self.step_s, self.after_s = step_s, after_s

    def wall(self) -> float:
        stepped = time.monotonic() - self.start > self.after_s
        return time.time() + (self.step_s if stepped else 0.0)


def test_a_clock_step_mid_run_changes_no_duration(tmp_path):
    stepping = SteppingClock(3600.0, after_s=0.3)
    result = run_command([PY, "-c", "import time; time.sleep(1.2)"], store=tmp_path / "g.db",
                         meter_objects=[FakeMeter()], summary=False,
                         clock=Clock(wall=stepping.wall))  # fmt: skip
    run = result.record
    assert result.exit_code == 0 and 1.1 < run["duration_s"] < 10.0  # not 3601 s
    with track("w", store=tmp_path / "g.db", meter_objects=[FakeMeter()],
               clock=Clock(wall=SteppingClock(3600.0, after_s=0.2).wall)) as handle:  # fmt: skip
        from greentrain import client

        with client.window("epoch"):
            time.sleep(0.6)
    assert handle.record["duration_s"] < 10.0
    assert handle.record["windows"][0]["duration_s"] < 10.0


def test_liveness_compares_boot_ticks_so_a_clock_step_cannot_fool_it():
    me = os.getpid()
    ticks, started = start_ticks(me), process_started(me)
    assert ticks is not None and started is not None
    assert pid_alive(me, started + 3600.0, ticks)  # the wall clock moved: still alive
    assert not pid_alive(me, started, ticks + 1)  # another process with this pid
    child = subprocess.Popen([PY, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid, None, ticks)


def test_sync_all_lands_every_store_from_the_journals_headers(tmp_path):
    targets = [str(tmp_path / "a.db"), str(tmp_path / "b.db")]
    for target in targets:
        Store(target).close()
        _journal(target)
    out = subprocess.run([PY, "-m", "greentrain", "store", "sync", "--all"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("1 journals landed") == 2
    for target in targets:
        assert _steps(target) == list(range(STEPS))


def test_a_forked_child_never_appends_to_its_parents_journal(tmp_path):
    journal = JournalWriter(locate(str(tmp_path / "g.db")), RUN)
    journal.append(ops.AddEvents(RUN, events=[{"t": 1, "event": "parent"}]))
    pid = os.fork()
    if pid == 0:  # a data loader worker, say: same objects, another process
        journal.append(ops.AddEvents(RUN, events=[{"t": 2, "event": "child"}]))
        journal.close(remove=True)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    journal.append(ops.AddEvents(RUN, events=[{"t": 3, "event": "parent again"}]))
    journal.close(remove=False)
    entries = read_journal(journal.path).entries
    assert [n for n, _ in entries] == [1, 2]
    assert [w.events[0]["event"] for _, w in entries] == ["parent", "parent again"]

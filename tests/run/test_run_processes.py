"""The job's process tree under ``greentrain run``: signals reach its group once, nothing it
starts outlives it, a dead wrapper leaves no job running, and the exit code is the job's."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from fixtures.waiting import wait_until

from greentrain.store import Store

PY = sys.executable


def _wrapper(store, *command, extra=(), **popen):
    argv = [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", *extra,
            "--", *command]  # fmt: skip
    return subprocess.Popen(argv, **popen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited already
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_file(path, timeout_s=60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


WORKER_JOB = """
import subprocess, sys, time
ignore = {ignore!r}
worker = ("import signal, time\\n" + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
          if ignore else "") + "time.sleep(120)")
p = subprocess.Popen([sys.executable, "-c", worker])
open(sys.argv[1], "w").write(str(p.pid))
time.sleep(120)
"""


@pytest.mark.parametrize("ignore", [False, True], ids=["worker-obeys", "worker-ignores-sigterm"])
def test_sigterm_to_the_wrapper_stops_every_worker_of_the_job(tmp_path, ignore):
    store, pidfile = tmp_path / "g.db", tmp_path / "worker.pid"
    proc = _wrapper(store, PY, "-c", WORKER_JOB.format(ignore=ignore), str(pidfile),
                    extra=["--grace", "1"], stderr=subprocess.PIPE, text=True)  # fmt: skip
    worker = int(_wait_file(pidfile))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert _gone(worker, 10), "a worker of the job outlived the wrapper"
    assert "forwarded to the command's process group" in proc.stderr.read()
    [run] = Store(store).list_runs()
    assert (run["status"], run["exit_code"]) == ("interrupted", 143)
    assert any(e["event"] == "signal forwarded" for e in run["events"])


def test_a_signal_to_the_wrappers_process_group_reaches_the_job_once(tmp_path):
    store, marker, ready = tmp_path / "g.db", tmp_path / "count", tmp_path / "ready"
    job = (
        "import signal, sys, time\n"
        "n = []\n"
        "signal.signal(signal.SIGINT, lambda s, f: n.append(s))\n"
        f"open({str(ready)!r}, 'w').write('1')\n"
        "deadline = time.time() + 20\n"
        "while not n and time.time() < deadline: time.sleep(0.02)\n"
        "time.sleep(0.5)\n"
        f"open({str(marker)!r}, 'w').write(str(len(n)))\n"
    )
    proc = _wrapper(store, PY, "-c", job, start_new_session=True, stderr=subprocess.DEVNULL)
    _wait_file(ready)
    os.killpg(proc.pid, signal.SIGINT)  # `kill -INT -- -PGID`, as a scheduler might
    assert proc.wait(timeout=60) == 0
    assert marker.read_text() == "1"


def _samples(store) -> int:
    """How many samples the store holds (read-only: the wrapper is writing it)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def test_a_dead_wrapper_leaves_no_job_running_and_a_marked_record_with_energy(tmp_path):
    store, pidfile = tmp_path / "g.db", tmp_path / "job.pid"
    job = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    proc = _wrapper(store, PY, "-c", job, extra=["--sample-s", "0.2", "--grace", "1"],
                    start_new_session=True, stderr=subprocess.DEVNULL)  # fmt: skip
    job_pid = int(_wait_file(pidfile))
    # a few samples of the energy so far, however loaded the machine
    wait_until(lambda: _samples(store) >= 3, deadline_s=60, every_s=0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert _gone(job_pid, 20), "the job kept running after its wrapper was killed"
    deadline = time.monotonic() + 20
    while Store(store).list_runs()[0]["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    [run] = Store(store).list_runs()
    assert run["status"] == "interrupted" and run["ended_at"] is not None
    assert [e["event"] for e in run["events"]] == ["wrapper died"]
    assert run["energy"]["gpu"]["energy_j"] > 0  # the last sample's energy, not a silent zero


def test_sigusr1_is_passed_to_the_job_and_does_not_interrupt_the_run(tmp_path):
    store, ready = tmp_path / "g.db", tmp_path / "ready"
    job = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda s, f: sys.exit(0))\n"
        f"open({str(ready)!r}, 'w').write('1')\n"
        "time.sleep(60)\n"
        "sys.exit(3)\n"
    )
    proc = _wrapper(store, PY, "-c", job, stderr=subprocess.DEVNULL)
    _wait_file(ready)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=60) == 0
    assert Store(store).list_runs()[0]["status"] == "finished"


@pytest.mark.parametrize("code", [130, 143])
def test_a_job_that_exits_130_or_143_by_itself_failed_and_was_not_interrupted(tmp_path, code):
    proc = _wrapper(tmp_path / "g.db", PY, "-c", f"raise SystemExit({code})",
                    stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.wait(timeout=60) == code
    run = Store(tmp_path / "g.db").list_runs()[0]
    assert (run["status"], run["exit_code"]) == ("failed", code)


def test_processes_the_command_leaves_running_are_stopped_and_noted(tmp_path):
    store, pidfile = tmp_path / "g.db", tmp_path / "bg.pid"
    proc = _wrapper(store, "sh", "-c", f"sleep 120 & echo $! > {pidfile}", extra=["--grace", "1"],
                    stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.wait(timeout=60) == 0
    assert not _alive(int(pidfile.read_text()))
    [run] = Store(store).list_runs()
    [event] = [e for e in run["events"] if e["event"] == "processes stopped"]
    assert event["count"] == 1


def test_output_piped_into_head_ends_the_job_with_sigpipe_as_in_a_shell(tmp_path):
    command = (
        f"{PY} -m greentrain run --store {tmp_path / 'g.db'} --meter fake -- "
        "sh -c 'while :; do echo x; done' | head -1"
    )
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert out.stdout == "x\n"
    run = Store(tmp_path / "g.db").list_runs()[0]
    assert run["exit_code"] == 128 + signal.SIGPIPE


def test_an_executable_script_without_shebang_runs_through_sh(tmp_path):
    script = tmp_path / "job"
    script.write_text("echo from-sh\nexit 4\n")
    script.chmod(0o755)
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"), "--meter", "fake",
         "--", str(script)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (out.returncode, out.stdout) == (4, "from-sh\n")


def test_a_long_tmpdir_does_not_stop_the_command_or_its_client_calls(tmp_path):
    tmp = tmp_path / ("t" * 120)
    tmp.mkdir()
    job = "from greentrain import client; client.log(step=1, acc=0.5)"
    out = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"), "--meter", "fake",
         "--", PY, "-c", job],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp)),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert Store(tmp_path / "g.db").list_runs()[0]["metrics"][0]["acc"] == 0.5


def test_with_stderr_closed_nothing_of_greentrain_reaches_the_jobs_stdout(tmp_path):
    command = (
        f"{PY} -m greentrain run --store {tmp_path / 'g.db'} --meter fake -- echo only-this 2>&-"
    )
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "only-this\n"


def test_supervised_child_and_its_children_stop_when_the_parent_gets_sigterm(tmp_path):
    """`greentrain app` runs Streamlit this way: SIGTERM to it leaves no server behind."""
    pidfile = tmp_path / "grandchild.pid"
    child = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    parent = (
        "import sys\n"
        "from greentrain.run.process import supervise\n"
        f"sys.exit(supervise([sys.executable, '-c', {child!r}], {{}}, grace_s=2))\n"
    )
    proc = subprocess.Popen([PY, "-c", parent], env=dict(os.environ))
    grandchild = int(_wait_file(pidfile))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert _gone(grandchild, 10)

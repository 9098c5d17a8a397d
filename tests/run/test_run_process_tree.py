"""A process tree nothing escapes: a daemon started with ``setsid env -i`` and a double fork
is stopped at the run's end and named in the record, with or without a cgroup; with one, the
job's CPU time covers the escaped daemon while it runs and the cgroup is removed afterwards;
``greentrain doctor`` says which applies, and the wrapper's own helpers are never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from greentrain.cli import main
from greentrain.meters.fake import FakeMeter
from greentrain.run import jobcgroup, run_command
from greentrain.run.process import ENV_HELPER, Job, become_subreaper
from greentrain.store import Store

PY = sys.executable
CGROUP = jobcgroup.probe().available


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _daemon_job(pidfile, body: str = "import time; time.sleep(120)") -> list[str]:
    """A job that starts a daemon the way init scripts do (new session, empty environment,
    double fork) and exits at once."""
    daemon = f'{PY} -c "{body}" & echo $! > {pidfile}'
    return ["sh", "-c", f"setsid env -i /bin/sh -c '{daemon}'; sleep 0.2"]


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "subreaper-only"])
def test_a_setsid_env_i_daemon_is_stopped_at_the_runs_end_and_named(tmp_path, monkeypatch, cgroup):
    if cgroup and not CGROUP:
        pytest.skip("no writable cgroup v2 here")
    if not cgroup:
        monkeypatch.setattr(jobcgroup.JobCgroup, "create", classmethod(lambda cls: None))
    pidfile = tmp_path / "daemon.pid"
    result = run_command(_daemon_job(pidfile), store=tmp_path / "g.db", grace_s=2,
                         meter_objects=[FakeMeter()], summary=False)  # fmt: skip
    daemon = int(pidfile.read_text())
    assert not _alive(daemon), "the daemon kept running after its run ended"
    [event] = [e for e in result.record["events"] if e["event"] == "processes stopped"]
    assert [(p["pid"], p["escaped"]) for p in event["processes"]] == [(daemon, True)]
    assert "time.sleep(120)" in event["processes"][0]["cmdline"]


@pytest.mark.skipif(not CGROUP, reason="no writable cgroup v2 here")
def test_the_job_cgroups_cpu_time_covers_an_escaped_daemon_and_the_cgroup_is_removed(tmp_path):
    become_subreaper()
    pidfile, burnt, script = tmp_path / "daemon.pid", tmp_path / "burnt", tmp_path / "burn.py"
    script.write_text(
        "import pathlib, sys, time\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 1.0:\n"
        "    pass\n"
        "pathlib.Path(sys.argv[1]).write_text('1')\n"
        "time.sleep(120)\n"
    )
    wait_burnt = f"i=0; while [ ! -s {burnt} ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done"
    command = f"setsid env -i {PY} {script} {burnt} & echo $! > {pidfile}; {wait_burnt}"
    job = Job(["sh", "-c", command], dict(os.environ), grace_s=2)
    assert job.start() is None
    path = job.cgroup.path
    assert job.wait() == 0
    daemon = int(pidfile.read_text())
    assert _alive(daemon) and daemon in job.cgroup.pids()
    assert job.reaped_cpu_s() >= 1.0  # the daemon's second of CPU, seen while it still runs
    assert job.stop_leftovers() == 1
    assert not _alive(daemon) and not os.path.exists(path)
    assert job.reaped_cpu_s() >= 1.0  # kept after the cgroup is gone


def test_the_wrappers_own_helpers_are_never_taken_for_the_jobs(tmp_path):
    become_subreaper()
    assert os.environ[ENV_HELPER] == str(os.getpid())
    helper = subprocess.Popen([PY, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        job = Job(["sh", "-c", "true"], dict(os.environ), grace_s=1)
        assert ENV_HELPER not in job.env
        assert job.start() is None and job.wait() == 0
        assert job.stop_leftovers() == 0
        assert helper.poll() is None
    finally:
        helper.kill()
        helper.wait()


def test_a_command_that_cannot_start_leaves_no_cgroup_behind(tmp_path):
    job = Job(["no-such-command-here"], dict(os.environ), grace_s=1)
    assert job.start() == 127
    assert job.cgroup is None


def test_doctor_says_whether_subreaper_and_cgroup_apply_and_why(capsys):
    assert main(["doctor", "--process-tree", "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["subreaper"]["available"] is sys.platform.startswith("linux")
    assert tree["cgroup"]["available"] is CGROUP and tree["cgroup"]["reason"]
    if not CGROUP:
        assert tree["cgroup"]["fix"]
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "process tree" in text and "subreaper" in text and "cgroup" in text


def test_the_cgroup_probe_leaves_nothing_behind():
    support = jobcgroup.probe()
    if support.where:
        left = [n for n in os.listdir(support.where) if n.startswith("greentrain-probe-")]
        assert left == []


def test_a_daemon_under_greentrain_run_is_stopped_within_the_run(tmp_path):
    pidfile, store = tmp_path / "daemon.pid", tmp_path / "g.db"
    argv = [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--grace",
            "1", "--", *_daemon_job(pidfile)]  # fmt: skip
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 0
    assert not _alive(int(pidfile.read_text()))
    [run] = Store(store).list_runs()
    assert any(e["event"] == "processes stopped" for e in run["events"])


def test_doctor_text_says_no_with_the_reason_and_the_fix_where_neither_applies():
    from greentrain.cli.doctor import format_process_tree

    text = format_process_tree({
        "subreaper": {"available": False, "reason": "PR_SET_CHILD_SUBREAPER is Linux only"},
        "cgroup": {"available": False, "reason": "cannot create a cgroup in /sys/fs/cgroup/u",
                   "fix": "run as root", "where": "/sys/fs/cgroup/u"},
    })  # fmt: skip
    assert "subreaper  no: PR_SET_CHILD_SUBREAPER is Linux only" in text
    assert "cgroup     no: cannot create a cgroup" in text and "fix: run as root" in text


@pytest.mark.skipif(not CGROUP, reason="no writable cgroup v2 here")
def test_a_daemon_that_left_the_group_is_stopped_through_the_cgroup_when_the_wrapper_dies(
    tmp_path,
):
    pidfile, store = tmp_path / "daemon.pid", tmp_path / "g.db"
    daemon_cmd = f"{PY} -c 'import time; time.sleep(120)'"
    job = f'setsid env -i /bin/sh -c "{daemon_cmd} & echo \\$! > {pidfile}"; sleep 120'
    wrapper = subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--grace",
         "1", "--", "sh", "-c", job],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition, with a generous deadline
    daemon = int(pidfile.read_text())
    assert _alive(daemon)
    wrapper.kill()  # SIGKILL: no clean-up of its own; only the watchdog is left
    wrapper.wait()
    while _alive(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(daemon), "the daemon outlived its dead wrapper"
    # the watchdog's mark; a reader may find the dead wrapper first and mark the run itself
    found: list[str] = []
    while time.monotonic() < deadline:
        with Store(store) as st:
            [run] = st.list_runs()
            found = [e.get("detail", "") for e in st.get_run(run["id"])["events"]
                     if e["event"] == "wrapper died"]  # fmt: skip
        if any("left in the job's cgroup" in d for d in found):
            break
        time.sleep(0.1)
    assert run["status"] == "interrupted"
    assert any("left in the job's cgroup" in d for d in found), found

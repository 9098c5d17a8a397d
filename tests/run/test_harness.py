"""The harness: exit codes, signals, crashed children and meters, windows, exact fake readings.

Tests that take ``store_target`` run against both store backends (an SQLite file and a
PostgreSQL database on a throwaway server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command, track
from greentrain.store import Store

PY = sys.executable
FAKE_SCRIPT = {
    "channels": [
        {"domain": "gpu", "device": "gpu:0", "per_read_j": 10.0},
        {"domain": "gpu", "device": "gpu:1", "per_read_j": 1.0},
        {"domain": "cpu", "device": "host", "energy_j": [2.0, 5.0, 9.0, 14.0, 20.0, 27.0]},
    ]
}

EPOCHS_CHILD = """
from greentrain import client
client.config(model="resnet18", drop_rate=0.8)
for epoch in range(2):
    with client.window("epoch", epoch=epoch):
        client.log(step=epoch, epoch=epoch, train_loss=1.0 / (epoch + 1))
"""


def _cli_run(store, *command, extra=(), env=None, **popen):
    argv = [
        PY,
        "-m",
        "greentrain",
        "run",
        "--store",
        str(store),
        "--meter",
        "fake",
        *extra,
        "--",
        *command,
    ]
    full_env = dict(os.environ, **(env or {}))
    return subprocess.Popen(argv, env=full_env, **popen)


@pytest.mark.parametrize("code", [0, 1, 3])
def test_child_exit_code_propagates_and_sets_status(store_target, code):
    store = store_target
    proc = _cli_run(store, PY, "-c", f"raise SystemExit({code})")
    assert proc.wait(timeout=60) == code
    run = Store(store).list_runs()[0]
    assert run["exit_code"] == code
    assert run["status"] == ("finished" if code == 0 else "failed")
    assert run["energy"]["gpu"]["source"] == "fake:fake"


def test_command_not_found_exits_127_and_records_failed_run(store_target):
    store = store_target
    proc = _cli_run(store, "no-such-command-greentrain", stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 127
    assert "command not found" in err
    run = Store(store).list_runs()[0]
    assert (run["status"], run["exit_code"]) == ("failed", 127)


def test_sigint_to_harness_reaches_child_once_and_marks_run_interrupted_with_energy(
    store_target, tmp_path
):
    store = store_target
    marker = tmp_path / "sigints"
    child = (
        "import signal, sys, time\n"
        "n = 0\n"
        "def on_int(s, f):\n"
        "    global n\n"
        "    n += 1\n"
        f"    open({str(marker)!r}, 'w').write(str(n))\n"
        "signal.signal(signal.SIGINT, on_int)\n"
        "print('ready', flush=True)\n"
        "deadline = time.time() + 20\n"
        "while n == 0 and time.time() < deadline: time.sleep(0.02)\n"
        "time.sleep(0.5)\n"  # a duplicate SIGINT would arrive in this pause
        "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "import os; os.kill(os.getpid(), signal.SIGINT)\n"  # die as Ctrl-C does: 130
    )
    proc = _cli_run(
        store, PY, "-c", child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert marker.read_text() == "1"
    assert "SIGINT forwarded to the command" in proc.stderr.read()
    run = Store(store).list_runs()[0]
    assert (run["status"], run["exit_code"]) == ("interrupted", 130)
    assert run["energy"]["gpu"]["energy_j"] > 0
    assert run["ended_at"] is not None


def test_plain_python_child_interrupted_by_sigint_exits_130(tmp_path):
    store = tmp_path / "g.db"
    child = "import time; print('ready', flush=True); time.sleep(30)"
    proc = _cli_run(
        store, PY, "-c", child, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert Store(store).list_runs()[0]["status"] == "interrupted"


def test_sigkilled_child_leaves_complete_failed_record(store_target):
    store = store_target
    child = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    proc = _cli_run(store, PY, "-c", child)
    assert proc.wait(timeout=60) == 137
    run = Store(store).list_runs()[0]
    assert (run["status"], run["exit_code"]) == ("failed", 137)
    assert run["ended_at"] and run["duration_s"] is not None
    assert run["energy"]["cpu"]["energy_j"] > 0
    assert run["meters"][0]["meter"] == "fake" and run["meters"][0]["error"] is None


def test_fake_readings_arrive_exactly_per_window_and_device(store_target):
    result = run_command(
        [PY, "-c", EPOCHS_CHILD],
        store=store_target,
        meter_objects=[FakeMeter(FAKE_SCRIPT)],
        summary=False,
    )
    assert result.exit_code == 0
    run = result.record
    # reads: command start (1), window0 begin (2), end (3), window1 begin (4), end (5), stop (6)
    assert [w["name"] for w in run["windows"]] == ["epoch", "epoch"]
    assert [w["info"] for w in run["windows"]] == [{"epoch": 0}, {"epoch": 1}]
    w0, w1 = (w["energy"] for w in run["windows"])
    assert w0["gpu"]["devices"] == {"gpu:0": 10.0, "gpu:1": 1.0}
    assert w0["gpu"]["energy_j"] == 11.0
    assert w0["cpu"]["energy_j"] == 4.0  # 9 - 5
    assert w1["cpu"]["energy_j"] == 6.0  # 20 - 14
    assert w0["dram"] is None
    # the run counts from the command's start (read 1), not from the meter's start
    assert run["energy"]["gpu"]["devices"] == {"gpu:0": 50.0, "gpu:1": 5.0}  # 60 - 10, 6 - 1
    assert run["energy"]["cpu"]["energy_j"] == 25.0  # 27 - 2
    assert run["energy"]["dram"]["energy_j"] is None and run["energy"]["dram"]["reason"]
    assert run["config"] == {"model": "resnet18", "drop_rate": 0.8}
    assert [(m["step"], m["window"], m["train_loss"]) for m in run["metrics"]] == [
        (0, "epoch", 1.0),
        (1, "epoch", 0.5),
    ]


def test_meter_that_raises_mid_run_is_recorded_and_others_carry_on(tmp_path):
    flaky = FakeMeter(
        {
            "name": "flaky",
            "fail_after": 2,
            "channels": [{"domain": "gpu", "device": "gpu:0", "per_read_j": 7.0}],
        }
    )
    steady = FakeMeter(
        {"name": "steady", "channels": [{"domain": "cpu", "device": "host", "per_read_j": 1.0}]}
    )
    result = run_command(
        [PY, "-c", EPOCHS_CHILD],
        store=tmp_path / "g.db",
        meter_objects=[flaky, steady],
        summary=False,
    )
    run = result.record
    assert run["status"] == "finished"
    meters = {m["meter"]: m for m in run["meters"]}
    assert "scripted failure on read 2" in meters["flaky"]["error"]
    assert meters["steady"]["error"] is None
    assert run["energy"]["cpu"]["energy_j"] == 5.0
    assert run["energy"]["gpu"]["energy_j"] is None
    assert "flaky" in run["energy"]["gpu"]["reason"]
    # the first window closed after flaky failed: only steady's figure is in it
    assert run["windows"][0]["energy"]["gpu"] is None
    assert run["windows"][0]["energy"]["cpu"]["energy_j"] == 1.0


class _SlowStartMeter(FakeMeter):
    """A fake meter whose start() takes a second, like CodeCarbon's hardware detection."""

    def start(self):
        time.sleep(1.0)
        super().start()


def test_meters_that_start_at_different_times_count_from_the_commands_start(tmp_path):
    fast = FakeMeter(
        {
            "name": "fast",
            "channels": [
                {"domain": "gpu", "device": "gpu:0", "power_w": 100.0, "method": "counter"}
            ],
        }
    )
    slow = _SlowStartMeter(
        {
            "name": "slow",
            "channels": [
                {"domain": "gpu", "device": "gpu:0", "power_w": 100.0, "method": "sampled"}
            ],
        }
    )
    result = run_command(
        [PY, "-c", "import time; time.sleep(0.5)"],
        store=tmp_path / "g.db",
        meter_objects=[fast, slow],
        summary=False,
    )
    gpu = result.record["energy"]["gpu"]
    [alt] = gpu["alternatives"]
    # without a common start, fast would also count the slow meter's second of start-up (2x)
    assert abs(alt["disagreement_pct"]) < 10
    assert gpu["energy_j"] == pytest.approx(100.0 * result.record["duration_s"], rel=0.1)


def test_unavailable_meter_is_recorded_with_reason_not_zero(tmp_path):
    off = FakeMeter(
        {"name": "off", "available": False, "reason": "no sensor", "fix": "buy one", "channels": []}
    )
    result = run_command(
        [PY, "-c", "pass"], store=tmp_path / "g.db", meter_objects=[off], summary=False
    )
    run = result.record
    assert run["meters"] == [
        {
            "meter": "off",
            "available": False,
            "reason": "no sensor",
            "fix": "buy one",
            "error": None,
            "devices": [],
        }
    ]
    for domain in ("gpu", "cpu", "dram"):
        assert run["energy"][domain]["energy_j"] is None
        assert "no sensor" in run["energy"][domain]["reason"]
    assert run["energy_j"] is None and run["co2_g"] is None


def test_baseline_power_is_stored_and_net_energy_subtracts_it(tmp_path):
    meter = FakeMeter({"channels": [{"domain": "cpu", "device": "host", "power_w": 10.0}]})
    result = run_command(
        [PY, "-c", "pass"],
        store=tmp_path / "g.db",
        meter_objects=[meter],
        baseline_s=0.2,
        summary=False,
    )
    run = result.record
    assert run["baseline"]["duration_s"] >= 0.2
    assert run["baseline"]["power_w"]["cpu"] == pytest.approx(10.0, rel=0.02)
    assert run["net_energy_j"] == pytest.approx(run["energy_j"] - 10.0 * run["duration_s"], abs=0.5)


def test_secret_environment_values_never_reach_the_store(tmp_path):
    store = tmp_path / "g.db"
    secret = "s3cr3t-TOKEN-value-5e1f"
    proc = _cli_run(
        store, PY, "-c", EPOCHS_CHILD, env={"MY_API_TOKEN": secret}, extra=["--tag", "k=v"]
    )
    assert proc.wait(timeout=60) == 0
    Store(store).list_runs()
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("g.db"))
    assert secret.encode() not in blobs
    assert b"MY_API_TOKEN" not in blobs


def test_track_records_windows_metrics_and_finishes(store_target):
    meter = FakeMeter({"channels": [{"domain": "gpu", "device": "gpu:0", "per_read_j": 2.0}]})
    from greentrain import client

    assert not client.active()
    with track("nb", store=store_target, meter_objects=[meter], tags={"a": "b"}) as run:
        assert client.active()
        client.config(lr=0.1)
        with client.window("epoch"):
            client.log(step=1, test_acc=0.5)
    assert not client.active()
    rec = Store(store_target).get_run(run.id)
    assert (rec["name"], rec["status"], rec["exit_code"]) == ("nb", "finished", 0)
    assert rec["windows"][0]["energy"]["gpu"]["energy_j"] == 2.0
    assert rec["energy"]["gpu"]["energy_j"] == 6.0
    assert rec["metrics"][0]["test_acc"] == 0.5 and rec["config"] == {"lr": 0.1}


@pytest.mark.parametrize("exc,status", [(KeyboardInterrupt, "interrupted"), (ValueError, "failed")])
def test_track_marks_interrupted_or_failed_when_the_body_raises(tmp_path, exc, status):
    with pytest.raises(exc), track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        raise exc()
    assert Store(tmp_path / "g.db").get_run(run.id)["status"] == status


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_track_killed_by_sigterm_or_sighup_leaves_interrupted_record_with_energy(tmp_path, sig):
    child = (
        "import os, signal, sys, time\n"
        "from greentrain import track\n"
        "from greentrain.meters.fake import FakeMeter\n"
        "chan = {'domain': 'cpu', 'device': 'host', 'per_read_j': 2.0}\n"
        "meter = FakeMeter({'channels': [chan]})\n"
        "with track('killed', store=sys.argv[1], meter_objects=[meter]):\n"
        f"    os.kill(os.getpid(), {int(sig)})\n"
        "    time.sleep(30)\n"
    )
    store = tmp_path / "g.db"
    proc = subprocess.run([sys.executable, "-c", child, str(store)], timeout=60)
    assert proc.returncode == 128 + int(sig)
    [run] = Store(store).list_runs()
    assert run["status"] == "interrupted" and run["exit_code"] == 128 + int(sig)
    assert run["energy"]["cpu"]["energy_j"] > 0


def test_track_leaves_signal_handlers_as_it_found_them(tmp_path):
    # from the default disposition: a run an earlier in-process test left open (a callback's
    # run whose train() raised closes at exit) may still hold its own handler here
    inherited = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, inherited)


def test_track_under_outer_run_binds_to_it_and_meters_once(store_target):
    child = (
        "from greentrain import track, client\n"
        "with track('inner') as run:\n"
        "    client.log(step=0, test_acc=0.9)\n"
        "    print(run.id, run.outer)\n"
    )
    store = store_target
    proc = _cli_run(store, PY, "-c", child, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    runs = Store(store).list_runs()
    assert len(runs) == 1
    assert out.split() == [runs[0]["id"], "True"]
    assert runs[0]["metrics"][0]["test_acc"] == 0.9


CONCURRENT_WORKER = """
import sys
from greentrain.run import run_command
from greentrain.meters.fake import FakeMeter
for i in range(5):
    r = run_command(["true"], store=sys.argv[1], name=f"w{sys.argv[2]}-{i}",
                    meter_objects=[FakeMeter({"channels": [
                        {"domain": "cpu", "device": "host", "per_read_j": 1.0}]})],
                    summary=False)
    assert r.exit_code == 0, r
"""


def test_eight_concurrent_wrappers_times_five_runs_lose_nothing(store_target):
    store = store_target
    procs = [subprocess.Popen([PY, "-c", CONCURRENT_WORKER, str(store), str(k)]) for k in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    runs = Store(store).list_runs()
    assert len(runs) == 40
    assert {r["name"] for r in runs} == {f"w{k}-{i}" for k in range(8) for i in range(5)}
    assert all(r["status"] == "finished" for r in runs)
    # each run's meter read 1 J of the (shared) machine; overlapping runs split it
    cpu = [r["energy"]["cpu"] for r in runs]
    assert all(0 < c["energy_j"] <= 1.0 + 1e-9 for c in cpu)
    assert all(c["energy_j"] == 1.0 or c["split"]["measured_j"] == pytest.approx(1.0) for c in cpu)


def test_show_json_of_recorded_run_is_valid_json(store_target):
    result = run_command(
        [PY, "-c", "pass"], store=store_target, meter_objects=[FakeMeter()], summary=False
    )
    out = subprocess.run(
        [
            PY,
            "-m",
            "greentrain",
            "show",
            result.run_id[:6],
            "--store",
            store_target,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out)["id"] == result.run_id
    time.sleep(0)  # keep `time` import used by helpers above


def _read_until(fd: int, token: bytes, timeout_s: float) -> bytes:
    import select

    buf, deadline = b"", time.monotonic() + timeout_s
    while token not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def test_terminal_ctrl_c_reaches_the_job_exactly_once_and_the_job_owns_the_terminal(tmp_path):
    """The job's own process group gets the terminal's foreground: Ctrl-C reaches it once, from
    the kernel, and greentrain forwards nothing."""
    store, marker = tmp_path / "g.db", tmp_path / "sigints"
    master, slave = os.openpty()
    launcher = (
        "import os, sys; os.setsid(); fd = os.open(sys.argv[1], os.O_RDWR); "
        "[os.dup2(fd, k) for k in (0, 1, 2)]; os.execvp(sys.argv[2], sys.argv[2:])"
    )
    child = (
        "import os, signal, time\n"
        "n = 0\n"
        "def on_int(s, f):\n"
        "    global n\n"
        "    n += 1\n"
        f"    open({str(marker)!r}, 'w').write(str(n))\n"
        "signal.signal(signal.SIGINT, on_int)\n"
        "print('ready', flush=True)\n"
        "deadline = time.time() + 20\n"
        "while n == 0 and time.time() < deadline: time.sleep(0.02)\n"
        "time.sleep(0.5)\n"
        "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
    )
    argv = [
        PY,
        "-c",
        launcher,
        os.ttyname(slave),
        PY,
        "-m",
        "greentrain",
        "run",
        "--store",
        str(store),
        "--meter",
        "fake",
        "--",
        PY,
        "-c",
        child,
    ]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    try:
        assert b"ready" in _read_until(master, b"ready", 60)
        os.write(master, b"\x03")
        output, deadline = b"", time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            output += _read_until(master, b"\x00", 0.2)  # keep the pty drained
        assert proc.wait(timeout=5) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"forwarded" not in output
    assert marker.read_text() == "1"
    assert Store(store).list_runs()[0]["status"] == "interrupted"


def test_track_power_w_reports_current_draw_from_cumulative_energy(tmp_path):
    meter = FakeMeter({"channels": [{"domain": "gpu", "device": "gpu:0", "power_w": 40.0}]})
    with track("power", store=tmp_path / "g.db", meters=[], meter_objects=[meter]) as run:
        assert run.power_w() is None  # first call only sets the reference point
        time.sleep(0.3)
        assert run.power_w() == pytest.approx(40.0, rel=0.1)

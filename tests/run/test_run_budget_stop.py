"""Stops that stop: a budget ends the job whatever its signal dispositions, through
``greentrain run``, ``track()`` and ``greentrain train``, and the record says ``budget`` only once
the job has stopped, with the time, the energy and the overshoot (fake meter: 155 W, real
processes and real signals)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

from greentrain import client
from greentrain.cli import main
from greentrain.errors import EXIT_BUDGET, BudgetExceeded
from greentrain.run import RunOptions, track
from greentrain.run.stopping import own_cgroup
from greentrain.store import Store
from greentrain.units import kwh_to_joules

BUDGET_KWH = 0.0001  # 360 J: about 2.3 s of the fake meter's 155 W
DEADLINE_S = 120  # generous: the machine is shared


def _only_run(store: str) -> dict:
    (listed,) = Store(store).list_runs()
    return Store(store).get_run(listed["id"])


def _events(run: dict, name: str) -> list[dict]:
    return [e for e in run.get("events") or [] if e["event"] == name]


def _stopped(run: dict) -> dict:
    (outcome,) = _events(run, "budget")
    assert outcome["stopped"] is True
    assert outcome["spent_j"] >= outcome["limit_j"] * 0.99
    assert outcome["overshoot"] == pytest.approx(outcome["spent_j"] / outcome["limit_j"] - 1)
    assert outcome["stop_s"] >= 0 and outcome["stopped_unix"] >= outcome["requested_unix"]
    return outcome


def _job(python_source: str, *, ignore_sigint: bool) -> list[str]:
    """A command whose Python process inherits SIGINT ignored (as from ``cmd &`` in a
    non-interactive shell) when ``ignore_sigint``."""
    python = f"exec {shlex.quote(sys.executable)} -c {shlex.quote(python_source)}"
    return ["/bin/sh", "-c", f"trap '' INT; {python}" if ignore_sigint else python]


IGNORES_TERM = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "while True: time.sleep(0.01)"
)


def test_greentrain_run_kills_a_job_that_ignores_sigint_and_traps_sigterm(tmp_path):
    store = str(tmp_path / "s.db")
    argv = ["run", "--store", store, "--meter", "fake", "--budget-kwh", str(BUDGET_KWH),
            "--grace", "1", "--"]  # fmt: skip
    started = time.monotonic()
    assert main([*argv, *_job(IGNORES_TERM, ignore_sigint=True)]) == EXIT_BUDGET
    assert time.monotonic() - started < DEADLINE_S
    run = _only_run(store)
    assert run["status"] == "budget" and run["exit_code"] == EXIT_BUDGET
    steps = [e["step"] for e in _events(run, "budget stop")]
    assert steps == ["SIGINT", "SIGTERM", "SIGKILL"]  # nothing short of SIGKILL stopped it
    outcome = _stopped(run)
    assert [s["step"] for s in outcome["steps"]] == steps
    assert outcome["stop_s"] >= 2.0 * 0.9  # two grace periods of 1 s before SIGKILL
    assert _events(run, "budget reached")[0]["spent_j"] <= outcome["spent_j"]


def test_greentrain_run_stops_a_job_ignoring_sigint_with_sigterm(tmp_path):
    store = str(tmp_path / "s.db")
    loop = "import time\nwhile True: time.sleep(0.01)"
    argv = ["run", "--store", store, "--meter", "fake", "--budget-kwh", str(BUDGET_KWH),
            "--grace", "1", "--"]  # fmt: skip
    assert main([*argv, *_job(loop, ignore_sigint=True)]) == EXIT_BUDGET
    run = _only_run(store)
    assert [e["step"] for e in _events(run, "budget stop")] == ["SIGINT", "SIGTERM"]
    assert _stopped(run)["stop_s"] < 60


def test_track_stops_a_block_whose_process_ignores_sigint(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as inherited from `cmd &`
    try:
        with pytest.raises(BudgetExceeded, match="budget"):
            with track("loop", options=options):
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:
                    time.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # put back as it was
    finally:
        signal.signal(signal.SIGINT, previous)
    run = _only_run(store)
    assert run["status"] == "budget" and run["exit_code"] == EXIT_BUDGET
    assert [e["step"] for e in _events(run, "budget stop")] == ["interrupt"]
    _stopped(run)


def test_track_stops_a_block_whose_thread_blocks_sigint_in_its_signal_mask(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])  # as inherited
    try:
        with pytest.raises(BudgetExceeded):
            with track("masked", options=options):
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:
                    time.sleep(0.01)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    run = _only_run(store)
    assert run["status"] == "budget"
    _stopped(run)


def test_track_gives_the_jobs_own_sigint_handler_its_graceful_stop(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH, grace_s=30)
    asked = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: asked.set())
    try:
        with pytest.raises(BudgetExceeded):
            with track("graceful", options=options):
                deadline = time.monotonic() + DEADLINE_S
                while not asked.is_set() and time.monotonic() < deadline:
                    time.sleep(0.01)  # the job's loop ends at its next step, cleanly
        assert asked.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)
    run = _only_run(store)
    assert run["status"] == "budget"
    assert [e["step"] for e in _events(run, "budget stop")] == ["interrupt"]


def test_track_raises_past_a_handler_that_swallows_the_interrupt(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH, grace_s=0.5)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)  # ignores it in Python
    try:
        with pytest.raises(BudgetExceeded):
            with track("deaf", options=options):
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:
                    time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
    run = _only_run(store)
    assert run["status"] == "budget"
    assert [e["step"] for e in _events(run, "budget stop")] == ["interrupt", "raise"]


def test_track_outside_the_main_thread_is_stopped_in_its_own_thread(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH)
    caught: list[BaseException] = []

    def job() -> None:
        try:
            with track("worker", options=options):
                deadline = time.monotonic() + DEADLINE_S
                while time.monotonic() < deadline:
                    sum(range(1000))
        except BudgetExceeded as err:
            caught.append(err)

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(DEADLINE_S + 30)
    assert not worker.is_alive() and caught
    assert _only_run(store)["status"] == "budget"


def test_a_block_that_catches_every_interrupt_is_recorded_as_not_stopped(tmp_path, caplog):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH, grace_s=0.3)
    said = ""
    with track("stubborn", options=options):
        interrupts, deadline = 0, time.monotonic() + DEADLINE_S
        while "could not be stopped" not in said and time.monotonic() < deadline:
            try:
                time.sleep(0.01)
                said = caplog.text  # the library logs (greentrain.run)
            except KeyboardInterrupt:
                interrupts += 1  # swallowed: the job goes on
    assert interrupts == 2 and "could not be stopped" in said
    run = _only_run(store)
    assert run["status"] == "finished"  # not "budget": the budget did not stop it
    assert _events(run, "budget stop failed") and not _events(run, "budget")
    (overspent,) = _events(run, "budget overspent")
    assert overspent["stopped"] is False and overspent["overshoot"] > 0


def test_a_budget_hit_mid_epoch_leaves_the_cut_epoch_out_of_the_forecast(tmp_path):
    store = str(tmp_path / "s.db")
    options = RunOptions.build(store=store, meters=["fake"], budget_kwh=BUDGET_KWH, epochs=50)
    completed = 0
    with pytest.raises(BudgetExceeded):
        with track("epochs", options=options):
            for index in range(50):
                with client.window("epoch", index=index):
                    time.sleep(0.4)  # about 62 J: the budget falls inside the 6th epoch
                completed += 1
    run = _only_run(store)
    forecasts = _events(run, "forecast")
    assert forecasts and max(f["epochs_done"] for f in forecasts) <= completed
    windows = [w for w in run["windows"] if w["name"] == "epoch"]
    assert len(windows) == completed + 1  # the cut epoch is in the record, marked by time
    _stopped(run)


def test_greentrain_train_started_with_sigint_ignored_stops_at_its_budget(tmp_path):
    store = str(tmp_path / "s.db")
    train = [sys.executable, "-m", "greentrain", "train", "--store", store, "--epochs", "200",
             "--budget-kwh", "0.00002", "--batch-size", "16", "--max-steps-per-epoch", "2",
             "--limit-eval-batches", "1", "--eval-batch-size", "16", "--meter", "fake",
             "--device", "cpu", "--no-progress"]  # fmt: skip
    command = "trap '' INT; exec " + " ".join(shlex.quote(a) for a in train)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("GREENTRAIN_RUN", None)
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == EXIT_BUDGET, done.stderr[-2000:]
    run = _only_run(store)
    assert run["status"] == "budget"
    outcome = _stopped(run)
    assert outcome["spent_at_request_j"] >= kwh_to_joules(0.00002) * 0.99
    assert outcome["stop_s"] < 30  # stopped at once, not trained on to the end
    assert len([w for w in run["windows"] if w["name"] == "epoch"]) < 200


def test_a_job_in_the_wrappers_own_cgroup_is_stopped_through_its_process_group_only():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert own_cgroup(child.pid) is None  # never signal every process of our cgroup
    finally:
        child.kill()
        child.wait()

"""Concurrent runs on one machine share its energy: together they never book more than the
meters measured, and each run says that its figure was split and how."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from fixtures.together import together

from greentrain.record.ranking import select_best
from greentrain.record.readings import EnergyReading
from greentrain.report.runs import parse_time
from greentrain.store import Store

PY = sys.executable
MACHINE_COUNTER = {  # a shared 100 W package counter, as RAPL is
    "channels": [{"domain": "cpu", "device": "package-0", "power_w": 100.0, "method": "rapl"}]
}


def _start(store, *job, name):
    env = dict(os.environ, GREENTRAIN_FAKE_METER=json.dumps(MACHINE_COUNTER))
    return subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake", "--name", name,
         "--sample-s", "0.2", "--", *job],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_four_concurrent_runs_together_book_what_the_machine_used_not_four_times(tmp_path):
    store = tmp_path / "g.db"
    t0 = time.time()
    job = together(tmp_path / "started", 4, 2.0)  # they overlap 2 s however late one starts
    procs = [_start(store, *job, name=f"s{i}") for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    runs = Store(store).list_runs()
    measured = [r["energy"]["cpu"]["split"]["measured_j"] for r in runs]
    booked = sum(r["energy"]["cpu"]["energy_j"] for r in runs)
    # the machine's 100 W from the first run's start to the last run's end (wall labels: each
    # run's meters start a little after its record does, and its duration counts from there)
    union_j = 100.0 * (max(_ended_t(r) for r in runs) - min(_start_t(r) for r in runs))
    assert sum(measured) > 3.5 * union_j / 1.3  # each meter saw the whole machine ...
    assert booked <= union_j * 1.02  # ... but together they book it once
    assert booked >= 0.95 * 100.0 * min(r["duration_s"] for r in runs)
    for r in runs:
        split = r["energy"]["cpu"]["split"]
        assert len(split["shared_with"]) == 3 and 0 < split["share"] < 1
        assert "split among concurrent runs" in split["method"]
    assert time.time() - t0 < 60


def test_a_busy_run_gets_the_cpu_share_an_idle_run_beside_it_does_not(tmp_path):
    store = tmp_path / "g.db"
    busy = _start(store, PY, "-c", "import time\nt = time.time()\nwhile time.time() - t < 2: pass",
                  name="busy")  # fmt: skip
    idle = _start(store, "sleep", "2", name="idle")
    assert busy.wait(timeout=120) == 0 and idle.wait(timeout=120) == 0
    by_name = {r["name"]: r["energy"]["cpu"] for r in Store(store).list_runs()}
    assert by_name["busy"]["split"]["share"] > 0.8
    assert by_name["idle"]["split"]["share"] < 0.2


def test_a_run_alone_keeps_the_whole_machine_figure(tmp_path):
    store = tmp_path / "g.db"
    assert _start(store, "sleep", "0.5", name="alone").wait(timeout=60) == 0
    [run] = Store(store).list_runs()
    assert "split" not in run["energy"]["cpu"]
    assert run["energy"]["cpu"]["energy_j"] == pytest.approx(100.0 * run["duration_s"], rel=0.2)


def test_the_jobs_own_estimate_beats_a_machine_wide_model_when_both_are_estimates():
    best = select_best(
        {
            "codecarbon": [EnergyReading("cpu", "host", 90.0, "codecarbon", {"estimated": True})],
            "estimate": [EnergyReading("cpu", "process-tree", 5.0, "estimated", {})],
            "rapl": [],
        }
    )["cpu"]
    assert best["source"] == "estimate:estimated"
    measured = select_best(
        {
            "codecarbon": [EnergyReading("cpu", "host", 90.0, "codecarbon", {})],  # via RAPL
            "estimate": [EnergyReading("cpu", "process-tree", 5.0, "estimated", {})],
        }
    )["cpu"]
    assert measured["source"] == "codecarbon:codecarbon"  # a measurement still wins


def _start_t(run):
    return parse_time(run["started_at"]).timestamp()


def _ended_t(run):
    return parse_time(run["ended_at"]).timestamp()

"""Estimate meter: energy grows with the CPU time of a wrapped child process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from greentrain.meters.estimate import DEFAULT_W_PER_CORE, EstimateMeter, watts_per_core

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def cpu(readings):
    return next(r for r in readings if r.domain == "cpu")


def test_attached_child_cpu_time_is_charged_even_after_it_exited():
    m = EstimateMeter(interval_s=0, w_per_core=10.0)
    m.start()
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(s=0.6)])
    m.attach(child.pid)
    child.wait()  # reaped: psutil can no longer see it; getrusage(RUSAGE_CHILDREN) can
    r = cpu(m.stop())
    assert r.method == "estimated" and r.detail["estimated"] is True
    assert r.detail["cpu_s"] >= 0.55
    assert r.energy_j == pytest.approx(r.detail["cpu_s"] * 10.0)


def test_default_follows_own_tree_including_children():
    m = EstimateMeter(interval_s=0, w_per_core=10.0)
    m.start()
    subprocess.run([sys.executable, "-c", BUSY.format(s=0.4)], check=True)
    first = cpu(m.read()).energy_j
    subprocess.run([sys.executable, "-c", BUSY.format(s=0.4)], check=True)
    second = cpu(m.stop()).energy_j
    assert first >= 3.5 and second >= first + 3.5


def test_ram_energy_is_positive_and_labelled():
    m = EstimateMeter(interval_s=0.05)
    m.start()
    dram = next(r for r in m.stop() if r.domain == "dram")
    assert dram.energy_j > 0 and dram.detail["w_per_gb"] == 0.375


def test_tdp_table_match_and_documented_fallback():
    w, source = watts_per_core("AMD EPYC 7763 64-Core Processor")
    assert w == pytest.approx(280 / 64) and "7763" in source
    w, source = watts_per_core("Mystery CPU 3000")
    assert w == DEFAULT_W_PER_CORE and "default" in source


JOB = """\
import json, sys, time
from greentrain import client

def busy(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass

with client.window("idle"):
    time.sleep(0.3)
t0 = time.process_time()
with client.window("busy"):
    busy(1.0)
t1 = time.process_time()
print(json.dumps({"busy_s": t1 - t0, "total_s": t1}))
"""


def test_a_real_run_records_the_cpu_seconds_of_each_estimate_and_the_statement_names_them(
    tmp_path,
):
    from greentrain.report import tables
    from greentrain.report.provenance import energy_split, split_sentence
    from greentrain.store.reader import StoreReader

    store = tmp_path / "runs.db"
    done = subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--meter", "estimate", "--store", str(store),
         "--", sys.executable, "-c", JOB],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout.strip().splitlines()[-1])  # the job's own CPU time, seconds
    with StoreReader(store, read_only=True) as reader:
        (run,) = reader.list_runs()
    inputs = run["energy"]["cpu"]["inputs"]
    # the process tree's CPU time: the job's own, plus its interpreter's start-up and exit
    assert job["total_s"] <= inputs["cpu_s"] <= job["total_s"] + 10.0
    assert run["energy"]["cpu"]["energy_j"] == pytest.approx(inputs["cpu_s"] * inputs["w_per_core"])
    assert inputs["tdp_source"] and run["energy"]["dram"]["inputs"]["rss_gb_h"] > 0
    windows = {w["name"]: w["energy"]["cpu"]["inputs"]["cpu_s"] for w in run["windows"]}
    # that window's alone (the harness reads its ends when the job's messages arrive: a few
    # clock ticks either side of the job's own figure)
    assert 0.5 * job["busy_s"] <= windows["busy"] <= job["busy_s"] + 5.0
    assert 0 <= windows["idle"] < windows["busy"] / 2 < inputs["cpu_s"]
    statement = tables.render([run], "statement")
    said = f"estimated from {inputs['cpu_s']:.3g} CPU-seconds of the process tree at "
    assert said + f"{inputs['w_per_core']:.2f} W per busy core" in statement
    compare_note = split_sentence(energy_split([run]))  # the Compare page's energy line
    assert "CPU and DRAM modelled, " + said in compare_note


def test_a_spans_inputs_are_its_own_cpu_seconds_and_gb_hours_not_the_runs_so_far():
    from greentrain.record.readings import EnergyReading, diff_readings

    def reading(cpu_s: float) -> dict:
        detail = {"cpu_s": cpu_s, "w_per_core": 4.0, "tdp_source": "table", "estimated": True}
        return {
            "estimate": [EnergyReading("cpu", "process-tree", cpu_s * 4.0, "estimated", detail)]
        }

    (span,) = diff_readings(reading(5.0), reading(2.0))["estimate"]
    assert span.energy_j == pytest.approx(12.0) and span.detail["cpu_s"] == pytest.approx(3.0)
    assert span.detail["w_per_core"] == 4.0 and span.detail["tdp_source"] == "table"

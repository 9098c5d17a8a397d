"""Estimate meter: energy grows with the CPU time of a wrapped child process."""

from __future__ import annotations

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

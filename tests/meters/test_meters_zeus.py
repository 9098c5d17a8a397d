"""Zeus meter: unavailable (not 0 J) without GPU/RAPL; windows rolled into cumulative totals."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from greentrain.errors import MeterUnavailable
from greentrain.meters.zeus import ZeusMeter


@dataclass
class M:
    gpu_energy: dict
    cpu_energy: dict | None = None
    dram_energy: dict | None = None


@dataclass
class FakeMonitor:
    """ZeusMonitor stand-in: each ended window reports the scripted energies."""

    gpu_indices: list = field(default_factory=lambda: [0])
    cpu_indices: list = field(default_factory=lambda: [0])
    windows: list = field(default_factory=list)
    open: set = field(default_factory=set)

    def begin_window(self, key, sync_execution=True):
        assert not sync_execution
        self.open.add(key)

    def end_window(self, key, sync_execution=True):
        assert not sync_execution
        self.open.remove(key)
        return self.windows.pop(0)


def test_unavailable_here_with_reason_never_zero_joules():
    # This machine has no GPU and no RAPL: real Zeus would report totals of 0 J.
    p = ZeusMeter().probe()
    if p.available:
        pytest.skip("this machine has a GPU or readable RAPL")
    assert "0 J" in p.reason and "GPU" in p.reason and "RAPL" in p.reason
    with pytest.raises(MeterUnavailable):
        ZeusMeter().start()


def test_empty_monitor_is_unavailable():
    m = ZeusMeter(monitor_factory=lambda: FakeMonitor(gpu_indices=[], cpu_indices=[]))
    assert not m.probe().available


def test_reads_roll_windows_into_cumulative_totals():
    mon = FakeMonitor(
        windows=[
            M({0: 10.0}, {0: 5.0}, {0: 1.0}),
            M({0: 20.0}, {0: 6.0}, {0: 2.0}),
        ]
    )
    m = ZeusMeter(monitor_factory=lambda: mon)
    assert m.probe().devices == ("gpu:0", "package-0 (cpu)")
    m.start()
    first = {(r.domain, r.device): r.energy_j for r in m.read()}
    assert first == {("gpu", "gpu:0"): 10.0, ("cpu", "package-0"): 5.0, ("dram", "dram-0"): 1.0}
    assert mon.open == {"greentrain"}  # a window is open again after each read
    final = {(r.domain, r.device): (r.energy_j, r.method) for r in m.stop()}
    assert final[("gpu", "gpu:0")] == (30.0, "zeus")
    assert final[("dram", "dram-0")] == (3.0, "zeus")
    assert mon.open == set()

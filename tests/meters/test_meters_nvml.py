"""NVML meter with a fake pynvml module injected at the library boundary."""

from __future__ import annotations

import pytest

from greentrain.errors import MeterUnavailable
from greentrain.meters.nvml import NvmlMeter
from greentrain.meters.nvml_devices import parse_visible_devices


class NVMLError(Exception):
    pass


class FakeNvml:
    """Just enough of pynvml: devices with a mJ energy counter (or none) and power in mW."""

    NVMLError = NVMLError

    def __init__(self, gpus, init_error=None):
        self.gpus = gpus  # list of dicts: uuid, name, energy_mj (None = unsupported), power_mw
        self.init_error = init_error
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error:
            raise NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return self.gpus[h]["uuid"]

    def nvmlDeviceGetName(self, h):
        return self.gpus[h]["name"]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for i, g in enumerate(self.gpus):
            if uuid in g.get("migs", ()):
                return ("mig", i)
        raise NVMLError("not found")

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, mig):
        return mig[1]

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if self.gpus[h]["energy_mj"] is None:
            raise NVMLError("Not Supported")
        return self.gpus[h]["energy_mj"]

    def nvmlDeviceGetPowerUsage(self, h):
        return self.gpus[h]["power_mw"]


def gpus():
    return [
        {
            "uuid": "GPU-aaaa-1111",
            "name": "Fake A100",
            "energy_mj": 1_000_000,
            "power_mw": 200_000,
            "migs": ["MIG-zzzz"],
        },
        {"uuid": "GPU-bbbb-2222", "name": "Fake A100", "energy_mj": 5_000, "power_mw": 100_000},
        {"uuid": "GPU-cccc-3333", "name": "Fake P100", "energy_mj": None, "power_mw": 50_000},
    ]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def by_device(readings):
    return {r.device: r for r in readings}


def test_counter_path_reports_joules_since_start_per_visible_gpu():
    nv = FakeNvml(gpus())
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "1,0"})
    m.start()
    nv.gpus[0]["energy_mj"] += 30_000
    nv.gpus[1]["energy_mj"] += 7_500
    got = by_device(m.stop())
    # job index 0 is physical GPU 1, job index 1 is physical GPU 0
    assert (
        got["gpu:0"].energy_j == pytest.approx(7.5)
        and got["gpu:0"].detail["uuid"] == "GPU-bbbb-2222"
    )
    assert got["gpu:1"].energy_j == pytest.approx(30.0)
    assert {r.method for r in got.values()} == {"counter"}
    assert nv.shutdowns >= 1


def test_uuid_entries_and_unique_prefixes_select_gpus():
    nv = FakeNvml(gpus())
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "GPU-bbbb,GPU-aaaa-1111"})
    assert m.probe().devices == ("gpu:0 Fake A100", "gpu:1 Fake A100")
    m.start()
    assert [r.detail["uuid"] for r in m.read()] == ["GPU-bbbb-2222", "GPU-aaaa-1111"]


def test_mig_uuid_is_metered_through_parent_gpu():
    nv = FakeNvml(gpus())
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "MIG-zzzz"})
    m.start()
    (r,) = m.read()
    assert r.detail["uuid"] == "GPU-aaaa-1111" and r.detail["mig"] == "MIG-zzzz"


def test_invalid_entry_ends_the_visible_list_like_cuda():
    assert parse_visible_devices("0,-1,1") == ["0"]
    assert parse_visible_devices("") == []
    assert parse_visible_devices(None) is None
    nv = FakeNvml(gpus())
    p = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "2,GPU-nope,0"}).probe()
    assert p.devices == ("gpu:0 Fake P100",)
    hidden = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "-1"}).probe()
    assert not hidden.available and "no NVIDIA GPU visible" in hidden.reason


def test_counter_reset_keeps_accumulating():
    nv = FakeNvml(gpus())
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "0"})
    m.start()
    nv.gpus[0]["energy_mj"] += 10_000
    assert m.read()[0].energy_j == pytest.approx(10.0)
    nv.gpus[0]["energy_mj"] = 4_000  # went backwards: driver reloaded, counter restarted at 0
    r = m.read()[0]
    assert r.energy_j == pytest.approx(14.0) and r.detail["resets"] == 1
    nv.gpus[0]["energy_mj"] = 6_000
    assert m.stop()[0].energy_j == pytest.approx(16.0)


def test_sampled_path_integrates_power_with_trapezoid():
    nv = FakeNvml(gpus())
    clock = Clock()
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "2"}, interval_s=60.0, clock=clock)
    m.start()  # 50 W at t=0 (no counter on this GPU -> sampled)
    clock.t = 2.0
    nv.gpus[2]["power_mw"] = 150_000
    r = m.read()[0]  # trapezoid: (50 + 150) / 2 * 2 s = 200 J
    assert r.method == "sampled" and r.energy_j == pytest.approx(200.0)
    clock.t = 3.0
    assert m.stop()[0].energy_j == pytest.approx(350.0)


def test_forced_sampled_mode_samples_gpus_that_have_counters():
    nv = FakeNvml(gpus())
    clock = Clock()
    m = NvmlMeter(
        mode="sampled", nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "0"}, interval_s=60.0, clock=clock
    )
    m.start()
    clock.t = 1.0
    (r,) = m.stop()
    assert r.method == "sampled" and r.energy_j == pytest.approx(200.0)


def test_forced_counter_mode_refuses_gpu_without_counter():
    nv = FakeNvml(gpus())
    m = NvmlMeter(mode="counter", nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "2"})
    with pytest.raises(MeterUnavailable, match="no energy counter"):
        m.start()


def test_init_failure_is_unavailable_with_driver_fix():
    p = NvmlMeter(nvml=FakeNvml([], init_error="Driver Not Loaded")).probe()
    assert not p.available and "NVML init failed" in p.reason and "driver" in p.fix


def test_no_gpu_here_is_unavailable_with_reason():
    p = NvmlMeter().probe()  # the real pynvml on this machine
    assert p.available or p.reason


def test_sampling_error_in_the_thread_is_raised_at_the_next_read():
    nv = FakeNvml(gpus())
    m = NvmlMeter(nvml=nv, environ={"CUDA_VISIBLE_DEVICES": "2"}, interval_s=0.001)
    m.start()
    del nv.gpus[2]["power_mw"]  # the next power reading fails (KeyError) in the thread
    m._poller._thread.join(timeout=5)
    with pytest.raises(RuntimeError, match="NVML power sampling failed"):
        m.read()
    with pytest.raises(RuntimeError, match="NVML power sampling failed"):
        m.stop()
    assert nv.shutdowns == nv.inits  # NVML is still shut down

"""The fake meter: scripted readings, failures, unavailability, and the env-var script."""

from __future__ import annotations

import json

import pytest

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters import create_meter
from greentrain.meters.fake import ENV_VAR, FakeMeter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def by_key(readings):
    return {(r.domain, r.device): r for r in readings}


def test_power_channel_gives_power_times_elapsed_seconds():
    clock = Clock()
    m = FakeMeter(
        {"channels": [{"domain": "gpu", "device": "gpu:0", "power_w": 100.0}]}, clock=clock
    )
    m.start()
    clock.t += 2.5
    (r,) = m.read()
    assert (r.domain, r.device, r.method) == ("gpu", "gpu:0", "fake")
    assert r.energy_j == pytest.approx(250.0)


def test_per_read_and_list_channels_are_deterministic_per_read():
    script = {
        "channels": [
            {"domain": "cpu", "device": "host", "per_read_j": 10.0},
            {"domain": "dram", "device": "host", "energy_j": [1.0, 2.5]},
        ]
    }
    m = FakeMeter(script)
    m.start()
    first, second, third = by_key(m.read()), by_key(m.read()), by_key(m.stop())
    assert first[("cpu", "host")].energy_j == 10.0 and first[("dram", "host")].energy_j == 1.0
    assert second[("cpu", "host")].energy_j == 20.0 and second[("dram", "host")].energy_j == 2.5
    assert third[("cpu", "host")].energy_j == 30.0 and third[("dram", "host")].energy_j == 2.5
    assert by_key(m.stop())[("cpu", "host")].energy_j == 30.0  # second stop: same, not counted


def test_fail_after_raises_on_nth_read_and_later():
    m = FakeMeter(
        {"channels": [{"domain": "cpu", "device": "host", "per_read_j": 1}]}, fail_after=2
    )
    m.start()
    m.read()
    with pytest.raises(RuntimeError, match="read 2"):
        m.read()
    with pytest.raises(RuntimeError):
        m.stop()


def test_unavailable_fake_probes_false_with_reason_and_refuses_start():
    m = FakeMeter(available=False, reason="scripted absence", fix="none needed")
    p = m.probe()
    assert not p.available and p.reason == "scripted absence" and p.fix == "none needed"
    with pytest.raises(MeterUnavailable, match="scripted absence"):
        m.start()


def test_channel_method_override_is_reported():
    m = FakeMeter(
        {"channels": [{"domain": "gpu", "device": "gpu:1", "per_read_j": 3, "method": "counter"}]}
    )
    m.start()
    assert m.read()[0].method == "counter"


def test_env_var_json_scripts_the_registry_fake(monkeypatch):
    script = {"name": "fake", "channels": [{"domain": "gpu", "device": "gpu:0", "energy_j": [7.0]}]}
    monkeypatch.setenv(ENV_VAR, json.dumps(script))
    m = create_meter("fake")
    m.start()
    assert [(r.device, r.energy_j) for r in m.read()] == [("gpu:0", 7.0)]


def test_env_var_may_name_a_json_file(monkeypatch, tmp_path):
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"available": False, "reason": "file says no"}))
    monkeypatch.setenv(ENV_VAR, str(path))
    assert create_meter("fake").probe().reason == "file says no"


def test_default_script_is_100w_gpu_50w_cpu_5w_dram(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    clock = Clock()
    m = FakeMeter(clock=clock)
    m.start()
    clock.t += 1.0
    got = {(r.domain, r.device): r.energy_j for r in m.read()}
    assert got == {("gpu", "gpu:0"): 100.0, ("cpu", "host"): 50.0, ("dram", "host"): 5.0}


@pytest.mark.parametrize(
    "script",
    [
        {"channels": [{"domain": "disk", "device": "x", "power_w": 1}]},
        {"channels": [{"domain": "cpu", "device": "x"}]},
        {"channels": [{"domain": "cpu", "device": "x", "power_w": 1, "per_read_j": 1}]},
        {"channels": "nope"},
    ],
)
def test_bad_script_is_a_config_error(script):
    with pytest.raises(ConfigError):
        FakeMeter(script)


def test_bad_env_json_is_a_config_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        create_meter("fake")

"""CodeCarbon meter: offline only, positive CPU/RAM energy, no network call."""

from __future__ import annotations

import socket
import time

import pytest

from greentrain.errors import ConfigError
from greentrain.meters.codecarbon import CodeCarbonMeter


@pytest.fixture
def no_network(monkeypatch):
    """Fail any connect() or DNS lookup for a non-local address; record attempts."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network blocked in test: {address}")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_dns(host, *args, **kwargs):
        if host not in (None, "127.0.0.1", "::1", "localhost"):
            attempts.append(("dns", host))
            raise OSError(f"DNS blocked in test: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_dns)
    return attempts


def test_offline_read_gives_positive_cpu_and_ram_energy_without_network(no_network):
    m = CodeCarbonMeter(country_iso_code="FRA")
    assert m.probe().available
    m.start()
    t0 = time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < 1.0:
        x += 1
    mid = {r.domain: r for r in m.read()}
    final = {r.domain: r for r in m.stop()}
    assert no_network == []
    assert final["cpu"].energy_j > 0 and final["dram"].energy_j > 0
    assert final["cpu"].energy_j >= mid["cpu"].energy_j
    assert final["cpu"].method == "codecarbon"
    assert final["cpu"].detail["tracking_mode"] == "machine"
    assert final["cpu"].detail["cpu_mode"]  # e.g. cpu_load when no RAPL
    if final["cpu"].detail["cpu_mode"] in ("cpu_load", "constant"):
        assert final["cpu"].detail["estimated"] is True
    assert final["dram"].detail["estimated"] is True
    assert final["cpu"].detail["codecarbon_emissions_g"] > 0
    assert "gpu" not in final  # no GPU here: no figure, not 0 J


def test_unknown_country_is_rejected_with_fix():
    p = CodeCarbonMeter(country_iso_code="XXX").probe()
    assert not p.available and "unknown country" in p.reason
    with pytest.raises(ConfigError):
        CodeCarbonMeter(country_iso_code="XXX").start()


def test_bad_tracking_mode_is_config_error():
    with pytest.raises(ConfigError, match="tracking_mode"):
        CodeCarbonMeter(tracking_mode="cluster")

"""RAPL meter on a fake /sys/class/powercap tree: zones, wrap-around, permission and absence."""

from __future__ import annotations

from pathlib import Path

import pytest

from greentrain.errors import MeterUnavailable
from greentrain.meters import rapl as rapl_mod
from greentrain.meters.rapl import RaplMeter


def zone(path: Path, name: str, energy_uj: int, max_uj: int) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def set_energy(path: Path, energy_uj: int) -> None:
    (path / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "powercap"
    pkg = zone(root / "intel-rapl:0", "package-0", 1_000_000, 10_000_000)
    dram = zone(pkg / "intel-rapl:0:1", "dram", 500_000, 5_000_000)
    zone(pkg / "intel-rapl:0:0", "core", 0, 10_000_000)
    zone(root / "intel-rapl:1", "psys", 0, 10_000_000)
    return root, pkg, dram


def by_device(readings):
    return {r.device: r for r in readings}


def test_probe_lists_package_and_dram_not_core_or_psys(tree):
    root, _, _ = tree
    p = RaplMeter(root, poll_s=None).probe()
    assert p.available
    assert p.devices == ("package-0 (cpu)", "dram-0 (dram)")


def test_energy_is_counter_delta_in_joules(tree):
    root, pkg, dram = tree
    m = RaplMeter(root, poll_s=None)
    m.start()
    set_energy(pkg, 3_500_000)
    set_energy(dram, 700_000)
    got = by_device(m.read())
    assert got["package-0"].energy_j == pytest.approx(2.5)
    assert got["package-0"].domain == "cpu" and got["package-0"].method == "rapl"
    assert got["dram-0"].energy_j == pytest.approx(0.2)
    assert got["dram-0"].domain == "dram"


def test_wrap_around_uses_max_energy_range(tree):
    root, pkg, _ = tree
    m = RaplMeter(root, poll_s=None)
    m.start()  # package at 1.0 J of a 10 J range
    set_energy(pkg, 9_000_000)
    assert by_device(m.read())["package-0"].energy_j == pytest.approx(8.0)
    set_energy(pkg, 2_000_000)  # wrapped: 9 -> 10 (=0) -> 2
    assert by_device(m.read())["package-0"].energy_j == pytest.approx(11.0)
    set_energy(pkg, 4_000_000)
    assert by_device(m.stop())["package-0"].energy_j == pytest.approx(13.0)
    assert by_device(m.stop())["package-0"].energy_j == pytest.approx(13.0)  # stop is idempotent


def test_poll_thread_catches_wraps_between_reads(tree):
    root, pkg, _ = tree
    m = RaplMeter(root, poll_s=0.01)
    m.start()
    m._update()  # what the thread does; called directly to avoid timing
    set_energy(pkg, 9_000_000)
    m._update()
    set_energy(pkg, 500_000)
    assert by_device(m.stop())["package-0"].energy_j == pytest.approx(9.5)


def test_permission_error_explains_cve_and_how_to_grant_access(tree, monkeypatch):
    root, _, _ = tree
    real = rapl_mod._read_int

    def root_only(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_int", root_only)
    p = RaplMeter(root, poll_s=None).probe()
    assert not p.available
    assert "CVE-2020-8694" in p.reason and "root" in p.reason
    assert "chmod" in p.fix and "udev" in p.fix
    with pytest.raises(MeterUnavailable, match="CVE-2020-8694"):
        RaplMeter(root, poll_s=None).start()


def test_absent_powercap_is_unavailable_with_reason(tmp_path):
    p = RaplMeter(tmp_path / "missing").probe()
    assert not p.available and "no RAPL powercap interface" in p.reason and p.fix


def test_tree_without_package_zone_is_unavailable(tmp_path):
    zone(tmp_path / "intel-rapl:0", "psys", 0, 10)
    p = RaplMeter(tmp_path).probe()
    assert not p.available and "no RAPL package zone" in p.reason

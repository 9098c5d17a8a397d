"""Best figure per domain: priority counter > sampled > zeus > rapl > codecarbon > estimated."""

from __future__ import annotations

import pytest

from greentrain.errors import ConfigError
from greentrain.meters import DEFAULT_METERS, METERS, create_meter, probe_all, select_best
from greentrain.meters.base import EnergyReading


def R(domain, device, energy_j, method, **detail):
    return EnergyReading(domain, device, energy_j, method, detail)


def test_counter_beats_sampled_and_alternatives_carry_disagreement_pct():
    best = select_best(
        {
            "zeus": [R("gpu", "gpu:0", 105.0, "zeus")],
            "nvml": [R("gpu", "gpu:0", 100.0, "counter"), R("gpu", "gpu:1", 50.0, "counter")],
            "codecarbon": [R("gpu", "all", 135.0, "codecarbon")],
        }
    )["gpu"]
    assert best["source"] == "nvml:counter"
    assert best["energy_j"] == 150.0
    assert best["devices"] == {"gpu:0": 100.0, "gpu:1": 50.0}
    assert best["estimated"] is False
    alts = {a["meter"]: a for a in best["alternatives"]}
    assert alts["zeus"]["disagreement_pct"] == pytest.approx(-30.0)
    assert alts["codecarbon"]["disagreement_pct"] == pytest.approx(-10.0)


def test_estimate_is_used_only_when_nothing_measured_the_domain():
    result = select_best(
        {
            "estimate": [
                R("cpu", "process-tree", 40.0, "estimated"),
                R("dram", "process-tree", 2.0, "estimated"),
            ],
            "rapl": [R("cpu", "package-0", 50.0, "rapl")],
        }
    )
    assert result["cpu"]["source"] == "rapl:rapl"
    assert result["cpu"]["alternatives"][0]["disagreement_pct"] == pytest.approx(-20.0)
    assert result["dram"]["source"] == "estimate:estimated"
    assert result["dram"]["estimated"] is True


def test_codecarbon_tdp_fallback_is_flagged_estimated():
    result = select_best({"codecarbon": [R("cpu", "host", 9.0, "codecarbon", estimated=True)]})
    assert result["cpu"]["estimated"] is True


def test_unmeasured_domain_is_null_with_reason_not_zero():
    result = select_best({"estimate": [R("cpu", "p", 1.0, "estimated")]}, {"nvml": "no driver"})
    assert result["gpu"]["energy_j"] is None
    assert (
        "no meter measured gpu" in result["gpu"]["reason"]
        and "nvml: no driver" in result["gpu"]["reason"]
    )


def test_mixed_methods_within_a_meter_rank_by_least_direct():
    result = select_best(
        {
            "nvml": [R("gpu", "gpu:0", 10.0, "counter"), R("gpu", "gpu:1", 10.0, "sampled")],
            "other": [R("gpu", "gpu:0", 20.0, "counter")],
        }
    )
    assert result["gpu"]["source"] == "other:counter"


def test_zero_best_gives_none_disagreement():
    result = select_best(
        {"rapl": [R("cpu", "p", 0.0, "rapl")], "estimate": [R("cpu", "p", 1.0, "estimated")]}
    )
    assert result["cpu"]["alternatives"][0]["disagreement_pct"] is None


def test_registry_knows_every_meter_and_rejects_unknown_names():
    assert set(METERS) == {"nvml", "zeus", "codecarbon", "rapl", "estimate", "fake"}
    assert "fake" not in DEFAULT_METERS
    with pytest.raises(ConfigError, match="unknown meter"):
        create_meter("nope")


def test_probe_all_reports_fake_and_never_raises_for_missing_hardware():
    probes = {p.meter: p for p in probe_all(["rapl", "fake"])}
    assert probes["fake"].available
    assert probes["rapl"].available in (True, False) and (
        probes["rapl"].available or probes["rapl"].reason
    )

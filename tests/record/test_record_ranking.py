"""THE best-figure ranking: counter > sampled > zeus > rapl > codecarbon > estimated, one text
for a missing domain whether the run is live or stored."""

from __future__ import annotations

import pytest

from greentrain.record.ranking import select_best
from greentrain.record.readings import EnergyReading


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
    nvml = {"meter": "nvml", "available": False, "reason": "no driver", "error": None}
    result = select_best({"estimate": [R("cpu", "p", 1.0, "estimated")]}, [nvml])
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


def test_live_run_and_its_stored_record_explain_a_missing_domain_with_the_same_text(tmp_path):
    from greentrain.meters.fake import FakeMeter
    from greentrain.run import track
    from greentrain.store import Store, ops

    cpu_only = FakeMeter({"channels": [{"domain": "cpu", "device": "host", "per_read_j": 1.0}]})
    broken = FakeMeter(
        {"name": "broken", "available": False, "reason": "no sensor", "channels": []}
    )
    with track("t", store=tmp_path / "s.db", meters=[], meter_objects=[cpu_only, broken]) as run:
        pass
    live = run.record["energy"]["gpu"]["reason"]  # chosen by the harness when the run ended
    with Store(tmp_path / "s.db") as st:
        # as if the wrapper died: the reader ranks the rows
        st.write(ops.SetRunFields(run.id, fields={"best": None}))
        stored = st.get_run(run.id)["energy"]["gpu"]
    assert stored["energy_j"] is None and stored["reason"] == live
    assert live == "no meter measured gpu (used: fake); broken: no sensor"

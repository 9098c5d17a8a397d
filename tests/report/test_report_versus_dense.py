"""Each configuration against dense with a 95% interval; the answer sentence; the energy's
provenance per domain."""

from __future__ import annotations

import math

import pytest
from fixtures.runs import make_run, study

from greentrain.report import comparison, grouping, meter_check, provenance
from greentrain.report import versus_dense as vd


def _finished(runs):
    return [r for r in runs if r["status"] == "finished"]


def test_paired_ratio_is_the_geometric_mean_of_seed_pairs_with_a_t_interval():
    r = vd.ratio({0: 2.0, 1: 4.4, 2: 6.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    logs = [math.log(2.0), math.log(2.2), math.log(2.0)]
    assert r.method == "paired" and r.n == 3
    assert r.estimate == pytest.approx(math.exp(sum(logs) / 3))
    assert r.low < r.estimate < r.high and r.distinguishable


def test_unmatched_seeds_fall_back_to_a_reproducible_bootstrap_of_the_ratio_of_means():
    a, d = {0: 2.0, 1: 2.2, 2: 1.8}, {5: 1.0, 6: 1.1, 7: 0.9}
    r = vd.ratio(a, d)
    assert r.method == "bootstrap" and r.estimate == pytest.approx(2.0)
    assert r.low < 2.0 < r.high
    assert vd.ratio(a, d) == r  # seeded: a page and an export give the same interval


def test_one_run_a_side_gives_no_interval_and_no_verdict():
    r = vd.ratio({0: 3.0}, {1: 1.0, 2: 1.2})
    assert r.method == "none" and r.low is None and not r.distinguishable
    assert "no interval" in r.interval_text()


def test_answer_names_the_known_winner_with_its_interval_n_and_meter():
    runs = _finished(study())
    sentence = vd.answer(grouping.runs_frame(runs), runs).sentence()
    assert sentence.startswith("Best accuracy per kWh: resnet18 / cifar10 / bar / 0.8, at 1.94×")
    assert "paired by seed, n=2 pairs" in sentence and "95% interval 1.8" in sentence
    assert "100% measured: GPU measured by the GPU's NVML energy counter" in sentence
    assert "not distinguishable" not in sentence


def test_answer_says_not_distinguishable_when_the_interval_spans_dense():
    kwh = 3.6e6
    runs = [
        make_run(f"d{s}", seed=s, accs=[a], epoch_energy_j=[kwh]) for s, a in [(0, 0.8), (1, 0.6)]
    ]
    runs += [
        make_run(f"s{s}", seed=s, schedule="bar", drop_rate=0.5, accs=[a], epoch_energy_j=[kwh])
        for s, a in [(0, 0.62), (1, 0.81)]
    ]
    sentence = vd.answer(grouping.runs_frame(runs), runs).sentence()
    assert "not distinguishable from dense" in sentence


def test_energy_split_tells_measured_gpu_from_modelled_cpu_per_domain():
    run = make_run("m", accs=[0.5], epoch_energy_j=[900.0])
    run["energy"]["cpu"] = {"energy_j": 100.0, "source": "estimate:estimated", "estimated": True}
    run["meters"].append(
        {"meter": "estimate", "available": True, "devices": ["cpu 'X': 6.40 W per busy core (TDP)"]}
    )
    split = provenance.energy_split([run])
    assert list(split) == ["gpu", "cpu"]
    assert split["gpu"].measured_share() == 1.0 and split["cpu"].measured_share() == 0.0
    text = provenance.split_sentence(split)
    assert text.startswith("90% measured: GPU measured by the GPU's NVML energy counter")
    assert "CPU modelled, estimated from the process tree's CPU time" in text
    assert "6.40 W per busy core" in text


def test_meters_within_their_stated_uncertainty_raise_no_warning():
    assert meter_check.disagreements(_finished(study())) == []  # zeus is +2% of NVML


def test_meters_that_disagree_are_named_and_the_ranking_rechecked_with_the_other():
    runs = _finished(study())
    for run in runs:  # a second meter reading 1.5x the best figure on every run
        run["energy"]["gpu"]["alternatives"] = [
            {"meter": "zeus", "method": "zeus", "energy_j": run["energy_j"] * 1.5}
        ]
    (d,) = meter_check.disagreements(runs)
    assert d.domain == "gpu" and d.alternative == "zeus:zeus" and d.worst_ratio == 1.5
    assert "more than their stated ±10% together" in d.text()
    frame = grouping.runs_frame(runs)
    labels = dict(zip(frame["id"], frame["configuration"], strict=True))
    sentence = meter_check.ranking_sentence(meter_check.rankings(runs, labels))
    assert sentence == (
        "With zeus:zeus instead, the best configuration stays and the order is unchanged."
    )
    notes = " ".join(comparison.compare(runs).notes)
    assert "Meters disagree: GPU: nvml:counter and zeus:zeus differ by up to 1.50×" in notes

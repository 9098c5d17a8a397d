"""Verdicts from intervals over paired rounds: the interval statistics, the per-round ratios
kept in the result, the where-table's verdict words and its baselines (no timing involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from greentrain.bench import where as bench_where
from greentrain.bench.stats import headline_interval, mean_interval, median_interval, paired_ratio
from greentrain.report.where import figure, verdict


def test_median_interval_is_the_order_statistics_with_binomial_coverage():
    values = list(range(20, 0, -1))  # unsorted on purpose
    got = median_interval(values)
    # n = 20: ranks 6 and 15 cover the median with probability 1 - 2 P(B(20, 1/2) <= 5)
    coverage = 1 - 2 * sum(math.comb(20, i) for i in range(6)) / 2**20
    assert (got["low"], got["high"]) == (6.0, 15.0)
    assert got["level"] == pytest.approx(coverage) and got["level"] >= 0.95


def test_median_interval_of_few_rounds_is_min_to_max_and_states_its_lower_coverage():
    got = median_interval([1.0, 0.9, 1.2, 1.1, 0.95])
    assert (got["low"], got["high"]) == (0.9, 1.2)
    assert got["level"] == pytest.approx(1 - 2 / 2**5)  # 93.75%, not the 95% asked for
    assert median_interval([1.0]) is None and median_interval([]) is None


def test_median_interval_covers_the_true_median_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    trials, n, hits = 2000, 25, 0
    for _ in range(trials):
        sample = rng.lognormal(mean=0.0, sigma=0.4, size=n)  # true median exp(0) = 1
        ci = median_interval(sample.tolist())
        hits += ci["low"] <= 1.0 <= ci["high"]
    assert hits / trials >= 0.94  # the exact coverage is 95.7% for n = 25; sampling noise


def test_mean_interval_is_students_t():
    from scipy import stats

    values = [0.8, 0.9, 1.25, 1.3, 0.85, 1.2]
    got = mean_interval(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert (got["low"], got["high"]) == (pytest.approx(low), pytest.approx(high))
    assert mean_interval([1.0]) is None


def test_paired_ratio_keeps_the_per_round_ratios_that_recompute_it():
    values, base = [2.0, 3.3, 1.8, 2.2, 2.1, 4.0], [1.0, 1.5, 1.0, 1.0, 1.0, 2.0]
    r = paired_ratio(values, base)
    assert r["per_round"] == [v / b for v, b in zip(values, base, strict=True)]
    assert r["median"] == pytest.approx(float(np.median(r["per_round"])))
    assert r["interval"] == median_interval(r["per_round"])
    assert headline_interval(r) == r["interval"]
    assert headline_interval(r, schedule=True) == mean_interval(r["per_round"])
    assert headline_interval({"median": 1.0, "mean": 1.0}) is None  # an older result


@pytest.mark.parametrize(
    "energy, step, expected",
    [
        (figure(0.88, 0.85, 0.92), None, "saves energy (12%, CI 8-15%)"),
        (None, figure(1.2, 1.18, 1.23), "costs time (+20%, CI +18-23%)"),
        (figure(0.98, 0.63, 1.78), figure(0.7, 0.6, 0.8), "no difference detected (energy)"),
        (figure(None), figure(0.9, 0.8, 1.01), "no difference detected (time)"),
        (None, figure(0.9), "no verdict (time: no interval over rounds)"),
        (
            None,
            figure(0.9, 0.8, 0.95, 0.75),
            "no verdict (time: too few rounds for a 95% interval)",
        ),
        (None, None, "n/a"),
    ],
)
def test_verdict_claims_a_difference_only_when_the_interval_excludes_1(energy, step, expected):
    assert verdict(energy, step) == expected


def _ratio(per_round: list[float]) -> dict:
    return paired_ratio(per_round, [1.0] * len(per_round))


def _result(channels_last: bool) -> dict:
    """A bench result with known per-round ratios (no timing)."""
    sparse = [0.50, 0.52, 0.49, 0.51, 0.53, 0.50, 0.48]
    zero_same, zero_fast = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01], [1.15] * 7

    def variant(name, kind, drop, same, fast):
        return {
            "name": name, "kind": kind, "drop_rate": drop,
            "ratios": {"step_time": _ratio(same), "energy": None, "backward_time": None},
            "ratios_vs_fastest_dense": {"step_time": _ratio(fast), "energy": None,
                                        "backward_time": None},
        }  # fmt: skip

    return {
        "schema": "greentrain.bench.ssprop/1",
        "config": {
            "model": "resnet18",
            "input_shape": [3, 32, 32],
            "batch_size": 64,
            "dtype": "float32",
            "channels_last": channels_last,
        },  # fmt: skip
        "env": {"device_name": "CPU"},
        "variants": [
            variant("dense", "dense", None, [1.0] * 7, [1.2] * 7),
            variant("sparse@0", "sparse", 0.0, zero_same, zero_fast),
            variant("sparse@0.8", "sparse", 0.8, [0.6] * 7, sparse),
        ],
    }


def test_where_row_takes_drop_0_against_the_same_layout_and_sparse_against_the_fastest():
    row = bench_where.row(_result(channels_last=False))
    # NCHW row whose fastest dense is channels_last: drop 0 vs NCHW dense is ~1, not 1.15
    assert row["zero_step"]["ratio"] == pytest.approx(1.0)
    assert row["sparse_step"]["ratio"] == pytest.approx(0.50)
    assert row["sparse_step"]["high"] < 1
    assert row["verdict"].startswith("saves time (50%, CI ")


def test_where_markdown_shows_each_interval_and_says_how_to_read_it():
    text = bench_where.markdown([_result(channels_last=True)])
    assert "0.500 [0.480-0.530]" in text  # n = 7: only [min, max] covers 95% (98.4%)
    assert "95% confidence" in text and "no difference detected" in text


def test_the_bench_table_gives_each_non_dense_variant_a_verdict_from_its_interval():
    from greentrain.bench.report import VARIANT_HEADERS, variant_verdict

    by_name = {v["name"]: v for v in _result(channels_last=True)["variants"]}
    assert VARIANT_HEADERS[-1] == "verdict vs fastest dense"
    assert variant_verdict(by_name["dense"]) == "-"
    assert variant_verdict(by_name["sparse@0.8"]).startswith("saves time (50%, CI ")
    # drop 0 vs the fastest dense: every round at 1.15, the interval excludes 1
    assert variant_verdict(by_name["sparse@0"]).startswith("costs time (+15%")

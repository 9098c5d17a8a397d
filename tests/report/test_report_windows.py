"""Window nesting for energy-to-accuracy: the one-sweep rule equals its definition, and a
run with many windows is handled (issue 13: nothing hangs)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from fixtures.runs import T0, make_run

from greentrain.report import curves

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def outermost_by_definition(spans):
    """Intervals not contained in a different interval (the rule in the docstring)."""
    return {
        (s0, s1)
        for s0, s1, _ in spans
        if not any(o0 <= s0 and s1 <= o1 and (o0, o1) != (s0, s1) for o0, o1, _ in spans)
    }


ends = st.integers(0, 20).map(float) | st.just(math.inf)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20).map(float), ends), max_size=12))
def test_outermost_sweep_equals_the_definition(intervals):
    spans = [(s0, max(s0, s1), 1.0) for s0, s1 in intervals]
    assert curves.outermost(spans) == outermost_by_definition(spans)


def test_many_windows_nested_in_one_are_counted_once():
    run = make_run("x", accs=[0.5])  # one epoch window, 0..10 s
    for k in range(5000):  # per-step windows inside it, each 1 J
        start = T0 + timedelta(seconds=k * 0.001)
        run["windows"].append(
            {
                "name": "step",
                "index": k + 1,
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(seconds=0.001)).isoformat(),
                "energy": {"gpu": {"energy_j": 1.0}},
            }
        )
    (rec,) = curves.accuracy_curve(run)
    assert rec["cum_energy_kwh"] == pytest.approx(0.1)  # the epoch only, steps not added

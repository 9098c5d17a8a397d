"""Any value a script can log arrives in the record as its JSON-safe form (or, holding an
integer beyond 64 bits, is left out alone), and nothing a script logs can break the record:
property-based over strings, floats, integers and nested containers."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.record.jsonable import to_jsonable
from greentrain.run import track
from greentrain.store import Store

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # JSON has no surrogates
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=TEXT.filter(bool), value=VALUES)
def test_any_logged_value_round_trips_as_its_json_safe_form(tmp_path, name, value):
    path = tmp_path / "g.db"
    with track("v", store=path, meter_objects=[FakeMeter()], sample_s=0) as run:
        client.log(step=1, **{name: value})
        client.config(**{name: value})
    record = Store(path).get_run(run.id)
    expected = to_jsonable(value)
    stored_name = f"user_{name}" if name in ("step", "window", "time_s") else name
    if _beyond_64_bits(expected):  # refused alone, and counted
        assert stored_name not in record["metrics"][0] and name not in record["config"]
        assert record["client_drops"]["reasons"] == {"unstorable value": 2}
    else:
        assert record["metrics"][0][stored_name] == expected
        assert record["config"][name] == expected
    json.dumps(record, allow_nan=False)  # the record stays strict JSON


def _beyond_64_bits(v) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return not -(2**63) <= v < 2**63
    if isinstance(v, dict):
        return any(_beyond_64_bits(x) for x in v.values())
    if isinstance(v, list):
        return any(_beyond_64_bits(x) for x in v)
    return False


@settings(max_examples=60, deadline=None)
@given(value=VALUES)
def test_the_json_safe_form_has_no_nan_infinity_or_non_string_keys(value):
    cleaned = to_jsonable(value)
    text = json.dumps(cleaned, allow_nan=False)

    def walk(v):
        if isinstance(v, float):
            assert math.isfinite(v)
        elif isinstance(v, dict):
            assert all(isinstance(k, str) for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(json.loads(text))

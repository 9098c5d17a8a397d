"""The app on a store of thousands of runs reads what a page shows: the Runs page reads one
page of runs (chosen in SQL) in a bounded number of queries, and the Run page one run whole.
Counted, not timed: the run objects the store assembles and the SQL queries it sends."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from fixtures.synthetic_store import Shape, scale_layout, write_runs  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from greentrain.store import rows  # noqa: E402
from greentrain.store.connection import Connection  # noqa: E402

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[2] / "app"
RUNS = 3000
GROUP_NODES = 8
MAX_QUERIES = 40  # per page load, whatever the store's size


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "big.db"
    write_runs(str(path), scale_layout(RUNS, group_nodes=GROUP_NODES), Shape(2, 4, 60.0), 200)
    return path


@pytest.fixture
def counted(big_store, monkeypatch) -> dict[str, int]:
    """Point the app at the big store and count what the store does from now on: run objects
    assembled (one per run or group member read) and SQL queries sent."""
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(big_store))
    st.cache_data.clear()  # a read cached by an earlier test would hide the reads
    seen = {"assembled": 0, "queries": 0}
    assemble, query = rows.assemble_run, Connection.query

    def counting_assemble(*args, **kwargs):
        seen["assembled"] += 1
        return assemble(*args, **kwargs)

    def counting_query(self, sql, params=()):
        seen["queries"] += 1
        return query(self, sql, params)

    monkeypatch.setattr(rows, "assemble_run", counting_assemble)
    monkeypatch.setattr(Connection, "query", counting_query)
    return seen


def _page(name: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(APP / "views" / f"{name}.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_runs_page_on_thousands_of_runs_reads_only_its_page_in_bounded_queries(counted):
    at = _page("runs")
    shown = at.dataframe[0].value
    size = at.selectbox[1].value  # runs per page
    assert len(shown) == size
    assert shown["id"].iloc[-1] == "group-00"  # newest first: the group is the newest entry
    # the page's runs, the group's members each (the count of all runs reads none)
    assert counted["assembled"] == size - 1 + GROUP_NODES
    assert counted["queries"] <= MAX_QUERIES
    assert f"of {RUNS + 1} matching" in " ".join(c.value for c in at.caption)


def test_runs_page_next_page_reads_that_page_only(counted):
    at = _page("runs")
    first = set(at.dataframe[0].value["id"])
    before = dict(counted)
    at.number_input[0].set_value(3).run()
    third = at.dataframe[0].value
    size = at.selectbox[1].value
    assert len(third) == size and not first & set(third["id"])
    assert counted["assembled"] - before["assembled"] <= size
    assert counted["queries"] - before["queries"] <= MAX_QUERIES


def test_run_page_on_thousands_of_runs_reads_one_run_whole(counted):
    at = _page("run", run="r00042")
    assert at.selectbox[0].value == "r00042"
    assert any("Energy" in m.label for m in at.get("metric"))
    # the selector's 100 newest (summaries; the group's members each) and the run opened
    assert counted["assembled"] == 100 - 1 + GROUP_NODES + 1
    assert counted["queries"] <= 2 * MAX_QUERIES

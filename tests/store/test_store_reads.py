"""Reads at scale: a listing chooses its runs in SQL and reads only theirs, and the concurrent-run
overlaps are found in one sweep -- with the same results as reading everything and filtering.

The oracle of every paginated read is the whole listing (every run assembled, then filtered
in Python, as the reader did before); the oracle of the sweep is the pairwise comparison it
replaced. Speed is the benchmark's (benchmarks/store_read.py), never a test's.
"""

from __future__ import annotations

import json

import pytest
from fixtures.synthetic_store import Shape, mixed_layout, scale_layout, write_runs
from hypothesis import given, settings
from hypothesis import strategies as st

from greentrain.cli import main
from greentrain.record.jsonable import dumps
from greentrain.record.split import Span, overlapping
from greentrain.store import Store
from greentrain.store.reader import StoreReader
from greentrain.store.selection import RunQuery

pytestmark = pytest.mark.slow  # builds real stores (and a PostgreSQL server for one backend)

SMALL = Shape(windows=3, metrics=5, duration_s=600.0)


@pytest.fixture
def mixed(store_target) -> str:
    """A mixed store (every status, groups, nested and concurrent runs, a dead wrapper) and a
    few dozen plain runs and two 4-node groups."""
    write_runs(store_target, mixed_layout() + scale_layout(40, group_nodes=4, groups=2), SMALL)
    return store_target


def _same(a: list[dict], b: list[dict]) -> bool:
    return dumps(a, sort_keys=True) == dumps(b, sort_keys=True)


QUERIES = [
    {},
    {"status": "finished"},
    {"status": "failed"},
    {"status": "interrupted"},
    {"status": "budget"},
    {"status": "running"},
    {"name": "alpha"},
    {"name": "job"},
    {"name": "job-1"},  # a group member's own name: the group is named by its lead
    {"tags": {"sweep": "s1"}},
    {"tags": {"sweep": "s1"}, "status": "failed"},
    {"tags": {"job": "g1"}},
]


def test_filters_and_pages_in_sql_give_what_filtering_the_whole_listing_gives(mixed):
    with StoreReader(mixed, read_only=True) as st:
        whole = st.list_runs()
        assert {"G1", "G2", "G3", "group-00", "dead", "inner"} <= {r["id"] for r in whole}
        for q in QUERIES:
            expected = [
                r
                for r in whole
                if r["status"] == q.get("status", r["status"])
                and r["name"] == q.get("name", r["name"])
                and all(r["tags"].get(k) == v for k, v in q.get("tags", {}).items())
            ]
            assert _same(st.list_runs(**q), expected), q
            for limit, offset in ((1, 0), (3, 0), (3, 2), (5, 40), (0, 1)):
                page = st.page(RunQuery(**q, limit=limit or None, offset=offset))
                end = len(expected) - offset
                want = expected[max(end - limit, 0) if limit else 0 : max(end, 0)]
                assert _same(page.runs, want), (q, limit, offset)
                assert page.total in (len(expected), None)
                if not RunQuery(**q).narrowed:
                    assert page.total == len(expected)
        ids = [r["id"] for r in whole]
        for offset in range(len(whole)):  # every page boundary, ties of start included
            page = st.page(RunQuery(limit=2, offset=offset))
            assert [r["id"] for r in page.runs] == ids[
                max(len(ids) - offset - 2, 0) : len(ids) - offset
            ]


def test_a_listing_reads_a_dead_wrapper_run_as_interrupted_and_splits_concurrent_runs(mixed):
    with StoreReader(mixed, read_only=True) as st:
        runs = {r["id"]: r for r in st.list_runs()}
        assert runs["dead"]["status"] == "interrupted"
        assert [r["id"] for r in st.list_runs(status="interrupted") if r["id"] == "dead"]
        assert runs["c-one"]["energy"]["cpu"]["split"]["shared_with"] == ["c-two"]
        assert runs["solo"]["energy"]["cpu"]["split"]["shared_with"] == ["g3-n0"]
        assert "split" not in runs["inner"]["energy"]["cpu"]  # nested: the outer run's party
        assert runs["G1"]["status"] == "failed" and len(runs["G1"]["nodes"]) == 2
        assert runs["inner"]["parent"] == "outer" and runs["outer"]["children"] == ["inner"]


def test_a_summary_listing_is_the_whole_run_object_without_windows_and_metrics(mixed):
    with StoreReader(mixed, read_only=True) as st:
        whole, summary = st.list_runs(), st.list_runs(summary=True)
    assert [r["id"] for r in summary] == [r["id"] for r in whole]
    for full, short in zip(whole, summary, strict=True):
        assert short["windows"] == [] and short["metrics"] == []
        for key in ("status", "name", "energy", "energy_j", "co2_g", "tags", "unreadable"):
            assert dumps(short[key]) == dumps(full[key]), (full["id"], key)
        assert len(short["nodes"]) == len(full["nodes"])


def test_ids_select_groups_whole_and_members_alone_with_the_same_filters(mixed):
    with StoreReader(mixed, read_only=True) as st:
        chosen = st.list_runs(ids=["G1", "g2-n1", "c-one", "inner"])
        assert [r["id"] for r in chosen] == ["c-one", "G1", "g2-n1", "inner"]
        assert [r["id"] for r in st.list_runs(ids=["G1", "c-one"], status="failed")] == ["G1"]
        assert [r["id"] for r in st.list_runs(ids=["G1", "c-one", "inner"], limit=1)] == ["inner"]


def _count_queries(target: str, query: RunQuery) -> tuple[int, set[int]]:
    """How many SQL queries a page read, and the sizes of the ``IN (...)`` lists of its
    child-table reads."""
    with StoreReader(target, read_only=True) as st:
        calls: list[tuple[str, tuple]] = []
        real = st._conn.query

        def counting(sql, params=()):
            calls.append((sql, tuple(params)))
            return real(sql, params)

        st._conn.query = counting
        st.page(query, summary=True)
    sizes = {len(p) for sql, p in calls if sql.startswith("SELECT * FROM energy")}
    return len(calls), sizes


def test_a_page_costs_the_same_queries_whatever_the_store_holds(tmp_path):
    small, big = str(tmp_path / "small.db"), str(tmp_path / "big.db")
    tiny = Shape(windows=1, metrics=1, duration_s=30.0)
    write_runs(small, scale_layout(40, group_nodes=8, groups=1), tiny, batch_runs=50)
    write_runs(big, scale_layout(400, group_nodes=8, groups=1), tiny, batch_runs=50)
    for query in (RunQuery(limit=10), RunQuery(status="failed", limit=5)):
        calls_small, sizes_small = _count_queries(small, query)
        calls_big, sizes_big = _count_queries(big, query)
        assert calls_small == calls_big  # one query per table, not one per run
        assert max(sizes_big) <= 10 + 8  # the page's runs (a group: its members) only
    with StoreReader(big, read_only=True) as st:
        page = st.page(RunQuery(limit=10))
        assert page.total == 401 and len(page.runs) == 10
        assert page.runs[-1]["id"] == "group-00" and len(page.runs[-1]["nodes"]) == 8


def test_runs_pages_with_limit_offset_since_and_lists_a_groups_nodes(mixed, capsys):
    def run(*args: str) -> str:
        assert main(["runs", "--store", mixed, *args]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    out = run("--limit", "2")
    assert "showing 2 of 56 runs; 54 older runs not shown (--offset 2" in out
    rows = [line.split()[0] for line in out.splitlines()[1:3]]
    assert rows == ["G3", "solo"]
    assert main(["runs", "--store", mixed, "--json", "--limit", "3", "--offset", "2"]) == 0
    out, err = capsys.readouterr()
    listed = json.loads(out)
    assert len(listed) == 3 and listed[-1]["windows"]  # --json: whole run objects
    assert "showing 3 of 56 runs; 51 older runs not shown" in err  # said beside the JSON
    nodes = run("--group", "G1")
    assert "g1-n0" in nodes and "g1-n1" in nodes and "total 2 runs:" in nodes
    assert "showing" not in run("--since", "2099-01-01") and "no runs" in run("--since", "1d")
    assert main(["runs", "--store", mixed, "--since", "soon"]) != 0
    assert "not a date or an age" in capsys.readouterr().err


def test_a_store_of_version_4_is_given_the_v5_columns_and_indexes(tmp_path):
    path = tmp_path / "s.db"
    v5_columns = ("launch_id", "group_size", "global_rank", "heartbeat_unix", "heartbeat_s")
    with Store(path) as st:
        st._conn.write(lambda tx: [tx.execute(f"DROP INDEX {i}") for i in
                                   ("runs_listing", "runs_host", "runs_running")])  # fmt: skip
        st._conn.write(lambda tx: [tx.execute(f"ALTER TABLE runs DROP COLUMN {c}")
                                   for c in v5_columns])  # fmt: skip
        st._conn.write(lambda tx: tx.execute(
            "UPDATE greentrain_meta SET value = '4' WHERE key = 'schema_version'"))  # fmt: skip
    with Store(path) as st:
        names = {r["name"] for r in st._conn.query("SELECT name FROM sqlite_master")}
        assert {"runs_listing", "runs_host", "runs_running"} <= names and st.version == 5
        columns = {r["name"] for r in st._conn.query("PRAGMA table_info(runs)")}
        assert set(v5_columns) <= columns


# -- the sweep ---------------------------------------------------------------------------------
def _pairwise(spans: dict[str, Span], wanted: list[str]) -> dict[str, set[str]]:
    """The comparison of every pair that the sweep replaced (the reader's code before)."""
    out = {}
    for run_id in (i for i in wanted if i in spans):
        me = spans[run_id]
        others = [
            o
            for o, s in spans.items()
            if o != run_id and s.host == me.host and s.start < me.end and s.end > me.start
        ]
        if any(spans[o].party != me.party for o in others):
            out[run_id] = set(others)
    return out


_times = st.integers(0, 40).map(float)
_spans = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.tuples(
        st.sampled_from(["h1", "h2", None]),
        _times,
        st.integers(-2, 15).map(float),
        st.sampled_from(["", "P", "Q"]),
    ),  # fmt: skip
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_spans, st.data())
def test_the_sweep_finds_exactly_the_overlaps_the_pairwise_comparison_found(raw, data):
    spans = {k: Span(h, s, s + d, p or k) for k, (h, s, d, p) in raw.items()}
    wanted = data.draw(st.lists(st.sampled_from(sorted(spans) or ["x"]), max_size=10))
    found = overlapping(spans, wanted)
    assert {k: set(v) for k, v in found.items()} == _pairwise(spans, wanted)
    for others in found.values():
        assert others == sorted(others, key=lambda o: (spans[o].start, o))

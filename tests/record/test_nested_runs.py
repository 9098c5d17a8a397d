"""Nested runs: a ``greentrain run`` inside another run's job knows its parent (through
``GREENTRAIN_RUN``), both records link to each other, and every total counts the inner energy
once (the outer run metered the whole process tree). Real processes, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greentrain.record.nesting import ancestor_chain, counted_once, nested_in
from greentrain.report.study import study_totals
from greentrain.report.unit_policy import energy_text
from greentrain.run.identity import parent_run_id
from greentrain.store import Store
from greentrain.store.backend import connect
from greentrain.store.schema import MIGRATIONS, SCHEMA_VERSION
from greentrain.units import joules_to_kwh


def _gt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greentrain", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))  # fmt: skip


def _nested(store: str, depth: int = 2) -> list[dict]:
    """Runs ``depth`` wrappers one inside the other; returns their records, outermost first."""
    inner: list[str] = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    for level in range(depth, 0, -1):
        inner = [sys.executable, "-m", "greentrain", "run", "--store", store, "--meter", "fake",
                 "--name", f"level{level}", "--", *inner]  # fmt: skip
    done = subprocess.run(inner, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    runs = {r["name"]: r for r in Store(store, read_only=True).list_runs()}
    return [runs[f"level{k}"] for k in range(1, depth + 1)]


def test_an_inner_run_records_its_parent_and_the_parent_lists_it(store_target):
    outer, inner = _nested(store_target)
    assert inner["parent"] == outer["id"] and inner["ancestors"] == [outer["id"]]
    assert outer["parent"] is None and outer["children"] == [inner["id"]]
    assert outer["energy_j"] > inner["energy_j"] > 0  # the outer run metered the whole tree
    for run in (outer, inner):  # one process tree: its machine energy is not split between them
        assert all("split" not in figure for figure in run["energy"].values())
    shown = _gt("show", "--store", store_target, inner["id"])
    assert f"nested in {outer['id']}" in shown.stdout, shown.stderr
    shown = _gt("show", "--store", store_target, outer["id"])
    assert f"nested runs {inner['id']}" in shown.stdout
    as_json = json.loads(_gt("show", "--store", store_target, "--json", inner["id"]).stdout)
    assert as_json["parent"] == outer["id"]


def test_every_total_counts_the_inner_energy_once(store_target):
    outer, inner = _nested(store_target)
    outer_kwh = joules_to_kwh(outer["energy_j"])
    totals = study_totals([outer, inner]).loc["all"]
    assert totals["energy_kwh"] == pytest.approx(outer_kwh)
    assert totals["co2_g"] == pytest.approx(outer["co2_g"]) and totals["nested_runs"] == 1
    exported = json.loads(
        _gt("export", "--allow-fake", "--store", store_target, "-f", "json").stdout
    )
    assert exported["totals"]["all"]["energy_kwh"] == pytest.approx(outer_kwh)
    statement = _gt("export", "--allow-fake", "--store", store_target, "-f", "statement").stdout
    assert "nested inside another selected run" in statement
    listing = _gt("runs", "--store", store_target).stdout.strip().splitlines()
    assert listing[-1].startswith(f"total 2 runs: {energy_text(outer_kwh)},")
    assert "1 nested runs counted once" in listing[-1]


def test_an_inner_run_selected_without_its_parent_is_counted(store_target):
    outer, inner = _nested(store_target)
    exported = json.loads(
        _gt(
            "export", "--allow-fake", "--store", store_target, "-f", "json", "--run", inner["id"]
        ).stdout
    )
    assert exported["totals"]["all"]["energy_kwh"] == pytest.approx(
        joules_to_kwh(inner["energy_j"])
    )


def test_a_grandchild_is_counted_once_even_when_its_parent_is_not_selected(tmp_path):
    top, middle, bottom = _nested(str(tmp_path / "g.db"), depth=3)
    assert bottom["ancestors"] == [middle["id"], top["id"]]
    assert counted_once([top, bottom]) == [True, False]
    assert nested_in(bottom, [top["id"]]) == top["id"]


def test_ancestor_chain_stops_at_a_cycle_of_a_hand_edited_store():
    assert ancestor_chain("a", {"a": "b", "b": "c", "c": "a"}) == ["b", "c"]


def test_parent_run_id_reads_greentrain_run_and_ignores_garbage():
    assert parent_run_id({"GREENTRAIN_RUN": "0123abcd4567"}) == "0123abcd4567"
    assert parent_run_id({}) is None
    assert parent_run_id({"GREENTRAIN_RUN": "x y; DROP TABLE runs"}) is None


def test_a_v3_store_is_migrated_to_v4_and_its_runs_have_no_parent(tmp_path):
    path = tmp_path / "old.db"
    conn = connect(path)

    def to_v3(tx):
        for v in (1, 2, 3):
            MIGRATIONS[v](conn, tx)
        tx.execute("INSERT INTO greentrain_meta (key, value) VALUES ('schema_version', '3')")
        tx.execute(
            "INSERT INTO runs (id, name, status, started_at, started_unix)"
            " VALUES ('old1', 'old', 'finished', '2026-01-01T00:00:00Z', 1.7e9)"
        )

    conn.write(to_v3)
    conn.close()
    with Store(path) as st:
        assert st.version == SCHEMA_VERSION >= 4  # v4 then later migrations
        assert st.get_run("old1")["parent"] is None


def test_track_in_a_process_of_another_run_without_its_channel_records_its_parent(tmp_path):
    store = str(tmp_path / "g.db")
    (outer,) = _nested(store, depth=1)
    code = (
        "from greentrain.run.track import track\n"
        f"with track('tracked', store={store!r}, meters=['fake']):\n"
        "    pass\n"
    )
    env = dict(os.environ, GREENTRAIN_RUN=outer["id"])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = {r["name"]: r for r in Store(store, read_only=True).list_runs()}
    assert runs["tracked"]["parent"] == outer["id"]
    assert runs["level1"]["children"] == [runs["tracked"]["id"]]


@given(st.lists(st.integers(min_value=-1, max_value=30), min_size=1, max_size=30), st.data())
def test_counted_once_keeps_exactly_the_outermost_runs_of_any_selection(parents, data):
    ids = [f"r{i}" for i in range(len(parents))]
    # a forest: each run's parent is an earlier run (or none)
    parent_of = {ids[i]: ids[p] for i, p in enumerate(parents) if 0 <= p < i}
    runs = [{"id": i, "ancestors": ancestor_chain(i, parent_of)} for i in ids]
    chosen = data.draw(st.lists(st.sampled_from(runs), unique_by=lambda r: r["id"], min_size=1))
    flags = counted_once(chosen)
    selected = {r["id"] for r in chosen}
    counted = {r["id"] for r, once in zip(chosen, flags, strict=True) if once}
    for run, once in zip(chosen, flags, strict=True):
        inside = [a for a in run["ancestors"] if a in selected]
        assert once == (not inside)  # counted exactly when no ancestor is selected
        if not once:  # ... and then its outermost selected ancestor is counted
            assert inside[-1] in counted

"""``greentrain store merge``: per-node stores into one file or PostgreSQL database -- groups
joined, every row copied, a copy already there counted once, conflicts and unfinished runs
refused before anything is written."""

from __future__ import annotations

import sqlite3
import time

import pytest
from fixtures.pgserver import raw_rows
from fixtures.store import new_run

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.store import Store, ops
from greentrain.store.merge import merge_stores


def _node_store(path, run_id: str, host: str, rank: int, *, group: str = "job", finish=True):
    with Store(path) as st:
        st.host = host
        new_run(st, run_id, name="t", command=["x"], cwd="/", group_id=group, group_rank=rank,
                started_unix=100.0 + rank)  # fmt: skip
        gpu = dict(meter="fake", domain="gpu", device="gpu:0", method="fake")
        st.write(ops.AddEnergy(run_id, rows=[dict(gpu, energy_j=10.0 * (rank + 1))]))
        st.write(ops.BeginWindow(run_id, idx=0, name="epoch", started_unix=101.0))
        st.write(ops.EndWindow(run_id, idx=0, ended_unix=102.0, duration_s=1.0,
                               energy_rows=[dict(gpu, energy_j=1.0)]))  # fmt: skip
        st.write(ops.AddMetrics(run_id, entries=[
            {"step": i, "window": None, "time_s": i, "metrics": {"a": i}}
            for i in range(3 if rank == 0 else 0)]))  # fmt: skip
        st.write(ops.AddSample(run_id, seq=0, t=100.0, cpu_s=0.0))
        st.write(ops.SetMeters(run_id, meters=[{"meter": "fake", "available": True}]))
        if finish:
            st.write(ops.FinishRun(run_id, status="finished", exit_code=0, ended_unix=110.0))
    return str(path)


@pytest.fixture
def nodes(tmp_path):
    return [_node_store(tmp_path / "n0.db", "a00000000000", "node0", 0),
            _node_store(tmp_path / "n1.db", "b00000000000", "node1", 1)]  # fmt: skip


def _counts(target: str) -> dict[str, int]:
    tables = ("runs", "energy", "windows", "metrics", "meters", "samples")
    return {t: raw_rows(target, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}


def test_merging_node_files_joins_the_group_and_copies_every_row(nodes, store_target, capsys):
    assert main(["store", "merge", *nodes, "--into", store_target]) == 0
    assert "merged 2 runs from 2 stores" in capsys.readouterr().out
    assert _counts(store_target) == {"runs": 2, "energy": 4, "windows": 2, "metrics": 3,
                                     "meters": 2, "samples": 2}  # fmt: skip
    with Store(store_target) as st:
        [group] = st.list_runs()
    assert group["id"] == "job" and [n["host"] for n in group["nodes"]] == ["node0", "node1"]
    assert group["energy"]["gpu"]["energy_j"] == 30.0
    assert [m["a"] for m in group["metrics"]] == [0, 1, 2]
    # merging again adds nothing and says so
    assert main(["store", "merge", *nodes, "--into", store_target]) == 0
    assert "merged 0 runs" in capsys.readouterr().out
    assert _counts(store_target)["runs"] == 2


def test_a_conflicting_duplicate_is_refused_and_nothing_is_written(nodes, tmp_path):
    other = _node_store(tmp_path / "x.db", "b00000000000", "elsewhere", 1)  # same id, other run
    into = tmp_path / "all.db"
    with pytest.raises(ConfigError, match="different content"):
        merge_stores([*nodes, other], into)
    assert not into.exists() or _counts(str(into))["runs"] == 0
    merge_stores(nodes[1:], into)
    with pytest.raises(ConfigError, match="already in"):
        merge_stores([nodes[0], other], into)  # n0's run is new, but the merge is all or nothing
    assert _counts(str(into)) == _counts(nodes[1])


def test_unfinished_runs_are_refused_and_pending_journals_land_before_the_merge(nodes, tmp_path):
    from greentrain.store import locate, ops
    from greentrain.store.journal import JournalWriter, pending_journals

    running = _node_store(tmp_path / "r.db", "c00000000000", "node2", 2, finish=False)
    with pytest.raises(ConfigError, match="still running"):
        merge_stores([*nodes, running], tmp_path / "all.db")
    journal = JournalWriter(locate(running), "c00000000000")  # the run's end, still waiting
    journal.append(ops.FinishRun("c00000000000", status="finished", exit_code=0,
                                 ended_unix=time.time(), duration_s=1.0))  # fmt: skip
    journal.close(remove=False)
    for _ in range(2):  # merged again: nothing doubles
        merge_stores([*nodes, running], tmp_path / "all.db")
    assert not pending_journals(locate(running))
    with Store(tmp_path / "all.db") as st:
        assert st.get_run("c00000000000")["status"] == "finished"
    with pytest.raises(ConfigError, match="both a source and the target"):
        merge_stores(nodes[1:], nodes[1])


def test_a_store_of_an_older_schema_merges_with_its_defaults(nodes, tmp_path):
    old = tmp_path / "old.db"
    _node_store(old, "d00000000000", "node3", 0, group="other")
    db = sqlite3.connect(old)  # as a v2 store: no group columns
    db.execute("UPDATE greentrain_meta SET value = '2' WHERE key = 'schema_version'")
    for index in ("runs_group", "runs_listing", "runs_host"):  # v3's and v5's: on group_id
        db.execute(f"DROP INDEX {index}")
    for column in ("group_id", "group_rank", "election"):
        db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    db.commit()
    db.close()
    into = tmp_path / "all.db"
    report = merge_stores([*nodes, str(old)], into)
    assert sorted(report.added) == ["a00000000000", "b00000000000", "d00000000000"]
    with Store(into) as st:
        assert sorted(r["id"] for r in st.list_runs()) == ["d00000000000", "job"]


def test_bad_sources_are_one_line_errors(tmp_path, capsys):
    assert (
        main(["store", "merge", str(tmp_path / "none.db"), "--into", str(tmp_path / "a.db")]) == 1
    )
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "a.db").exists()

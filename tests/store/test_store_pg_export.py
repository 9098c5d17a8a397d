"""The exports read the same runs from either store backend: every format is identical from an
SQLite file and from a PostgreSQL database, and a run group counts as one run whose energy and
hardware count each node once."""

from __future__ import annotations

import copy

import pytest
from fixtures.runs import NASTY, make_run, study
from fixtures.store import new_run, write_store

from greentrain.cli.export import select_runs
from greentrain.report import tables
from greentrain.report.formats import NAMES as FORMATS
from greentrain.store import Store, ops


def _node(run_id: str, host: str, rank: int) -> dict:
    run = make_run(run_id, name=f"ddp {NASTY}", accs=[0.6, 0.7] if rank == 0 else [],
                   epoch_energy_j=[3.6e5, 3.6e5], tags={"sweep": "sw2"})  # fmt: skip
    run["env"]["host"] = host
    if rank:
        run["metrics"] = []
    return run


def _write(target: str) -> None:
    write_store(target, study())
    with Store(target) as st:
        for rank, host in enumerate(("node-a", "node-b")):
            run = _node(f"n{rank}", host, rank)
            st.host = host
            write_store_group(st, run, rank)


def write_store_group(st: Store, run: dict, rank: int) -> None:
    """One node's run of the group ``ddp-1`` through the writer API."""
    new_run(st, run["id"], name=run["name"], command=run["command"], cwd=run["cwd"],
            tags=run["tags"], env=run["env"], carbon=run["carbon"], started_unix=1.8e9,
            group_id="ddp-1", group_rank=rank)  # fmt: skip
    st.write(ops.UpdateConfig(run["id"], params=run["config"] if rank == 0 else {}))
    gpu = dict(meter="nvml", domain="gpu", device="gpu:0", method="counter")
    st.write(ops.AddEnergy(run["id"], rows=[dict(gpu, energy_j=run["energy_j"])]))
    entries = [{"step": m.get("step"), "window": m.get("window"), "time_s": m["time_s"],
                "metrics": {k: v for k, v in m.items() if k not in ("step", "window", "time_s")}}
               for m in run["metrics"]]  # fmt: skip
    st.write(ops.AddMetrics(run["id"], entries=entries))
    st.write(ops.FinishRun(run["id"], status="finished", exit_code=0, ended_unix=1.8e9 + 20))


@pytest.fixture(scope="module")
def both(tmp_path_factory, pg_server):
    path = str(tmp_path_factory.mktemp("exp") / "s.db")
    url = pg_server.url(pg_server.new_database("exp"))
    for target in (path, url):
        _write(target)
    return path, url


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_the_same_from_sqlite_and_postgresql(both, fmt):
    rendered = []
    for target in both:
        with Store(target, read_only=True) as st:
            rendered.append(tables.render(select_runs(st), fmt))
    assert rendered[0] == rendered[1]


def test_a_group_is_one_run_counting_each_node_once(both):
    for target in both:
        with Store(target, read_only=True) as st:
            runs = select_runs(st, sweep="sw2")
            assert [r["id"] for r in runs] == ["ddp-1"]
            assert select_runs(st, run_ids=["ddp"])[0]["nodes"][1]["host"] == "node-b"
        group = copy.deepcopy(runs[0])
        assert group["energy_j"] == pytest.approx(2 * 7.2e5)
        assert group["env"]["gpu_models"] == ["NVIDIA H100 80GB HBM3"] * 2  # one per node
        statement = tables.render(runs, "statement")
        assert "2x NVIDIA H100 80GB HBM3" in statement and "(1 run)" in statement
        frame = tables.render(runs, "json")
        assert '"nodes": 2' in frame

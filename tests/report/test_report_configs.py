"""Configurations are formed from what varies among the runs compared (seeds and noise pooled)."""

from __future__ import annotations

from pathlib import Path

from fixtures.runs import make_run

from greentrain.report import configs, grouping
from greentrain.store import Store

VARIANTS_DB = Path(__file__).resolve().parents[2] / "reports" / "ssprop-variants" / "runs.db"


def _variant(run_id: str, seed: int, **cfg) -> dict:
    run = make_run(run_id, schedule="constant", drop_rate=0.8, seed=seed)
    run["config"].update(cfg, name=run_id, store=f"/tmp/{run_id}.db", data_dir="/data")
    return run


def test_runs_differing_in_an_ssprop_option_are_two_configurations_not_one():
    runs = [_variant(f"a{s}", s, reselect_every=1) for s in range(2)]
    runs += [_variant(f"b{s}", s, reselect_every=4) for s in range(2)]
    g = grouping.group_runs(runs)
    assert list(g["n_runs"]) == [2, 2]
    assert sorted(g["configuration"]) == [
        "resnet18 / cifar10 / constant / 0.8, reselect_every=1",
        "resnet18 / cifar10 / constant / 0.8, reselect_every=4",
    ]
    assert grouping.grouped_by(g) == ["reselect_every"]


def test_seed_name_paths_and_store_never_split_a_configuration():
    runs = [_variant(f"a{s}", s) for s in range(3)]
    assert configs.varying_keys(runs) == []
    g = grouping.group_runs(runs)
    assert list(g["n_runs"]) == [3] and g["seeds"][0] == [0, 1, 2]


def test_dense_runs_pool_whatever_sparse_options_they_were_launched_with():
    dense = [make_run(f"d{s}", seed=s) for s in range(2)]
    dense[0]["config"].update(reselect_every=4, schedule="bar")
    dense[1]["config"].update(reselect_every=1, schedule="constant")
    g = grouping.group_runs(dense)
    assert list(g["configuration"]) == ["resnet18 / cifar10 / dense"]


def test_group_by_overrides_the_keys_and_names_what_it_pools_over():
    runs = [_variant("a", 0, reselect_every=1, lr=0.1), _variant("b", 0, reselect_every=4, lr=0.1)]
    runs.append(_variant("c", 1, reselect_every=4, lr=0.2))
    assert len(grouping.group_runs(runs)) == 3
    pooled = grouping.group_runs(runs, group_by=["lr"])
    assert sorted(pooled["n_runs"]) == [1, 2]
    assert grouping.pooled_keys(runs, ["lr"]) == ["reselect_every"]
    assert grouping.pooled_keys(runs, None) == []


def test_shipped_ssprop_variants_store_reports_each_variant_apart():
    with Store(VARIANTS_DB, read_only=True) as store:
        runs = store.list_runs()
    g = grouping.group_runs(runs)
    assert len(g) == 6 and set(g["n_runs"]) == {3}
    gflops = sorted(round(v / 1e9, 2) for v in g["backward_flops_mean"])
    assert 1.80 in gflops and 3.74 in gflops and 2.29 not in gflops
    pooled = grouping.group_runs(runs, group_by=[])
    assert 12 in set(pooled["n_runs"])  # what the old grouping did, now only on request

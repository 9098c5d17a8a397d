"""``greentrain demo`` end to end (one tiny epoch per run)."""

from __future__ import annotations

import torch

from greentrain.cli import main
from greentrain.store import Store


def test_demo_trains_dense_and_ssprop_stores_both_and_prints_comparison(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store = str(tmp_path / "demo.db")
        code = main(
            ["demo", "--epochs", "1", "--limit-batches", "1", "--store", store,
             "--meter", "fake", "--device", "cpu", "--no-progress"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    out = capsys.readouterr().out
    for text in ("test acc", "energy (", "CO2e", "bwd GFLOPs/iter", "acc per ",
                 "ssprop/dense", "energy source:"):  # fmt: skip
        assert text in out
    assert "e-0" not in out  # the unit policy: no figure in e-notation
    runs = Store(store).list_runs()
    assert sorted(r["tags"]["mode"] for r in runs) == ["dense", "ssprop"]
    assert all(r["status"] == "finished" for r in runs)
    sparse = next(r for r in runs if r["tags"]["mode"] == "ssprop")
    assert sparse["config"]["drop_rate"] == 0.8 and sparse["config"]["schedule"] == "bar"
    assert sparse["config"]["period"] == 2

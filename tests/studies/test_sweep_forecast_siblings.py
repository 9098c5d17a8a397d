"""The sweep dry run's predicted points get the live forecast's sibling prior: the finished
runs of the point's configuration (other seeds) in the store, written by real ``track()`` runs
with a sweep point's command."""

from __future__ import annotations

import random
import sys

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.run import track
from greentrain.store import Store
from greentrain.studies.sweep_forecast import configuration_prior

EPOCHS = 4


def _point(store: str, monkeypatch, drop: float, seed: int) -> dict:
    """A finished run of ``greentrain train --drop DROP --seed SEED`` with known epochs."""
    argv = ["greentrain", "train", "--drop", str(drop), "--seed", str(seed), "--name", f"s{seed}"]
    monkeypatch.setattr(sys, "argv", argv)
    rng, state = random.Random(seed), {"j": 0.0}
    meter = FakeMeter({"channels": [{"domain": "gpu", "device": "gpu:0",
                                     "fn": lambda k, s: state["j"]}]})  # fmt: skip
    with track(store=store, meters=[], meter_objects=[meter], sample_s=0) as run:
        client.config(epochs=EPOCHS, drop_rate=drop, seed=seed)
        for i in range(EPOCHS):
            with client.window("epoch", index=i):
                state["j"] += 50.0 * (1 + 0.05 * rng.uniform(-1, 1))
    with Store(store) as st:
        return st.get_run(run.id)


def test_a_predicted_point_gets_the_prior_of_its_configurations_finished_seeds(
    tmp_path, monkeypatch
):
    store = str(tmp_path / "s.db")
    first = _point(store, monkeypatch, 0.8, 0)
    assert configuration_prior(store, first, EPOCHS) is None  # one sibling: no prior
    _point(store, monkeypatch, 0.8, 1)
    _point(store, monkeypatch, 0.0, 2)  # another configuration: not a sibling
    prior = configuration_prior(store, first, EPOCHS)
    assert prior is not None and prior.siblings == 2
    assert configuration_prior(store, first, EPOCHS + 1) is None  # shorter than the point

"""The live forecast's prior from finished sibling runs (issue 22): real runs through
``track()`` into a real SQLite store, epochs of known joules (a fake meter whose reading the
test sets), and a lookup that hangs or fails injected where the store is read."""

from __future__ import annotations

import dataclasses
import io
import random
import threading
import time

import pytest

from greentrain import client
from greentrain.errors import StoreError
from greentrain.meters.fake import FakeMeter
from greentrain.record.forecast import forecast
from greentrain.record.siblings import sibling_prior
from greentrain.run import track
from greentrain.run.forecasting import NO_SIBLINGS, ForecastListener, progress_text
from greentrain.run.sibling_lookup import SiblingSource, read_siblings
from greentrain.run.summary import forecast_prior_text, print_summary
from greentrain.store import Store, locate

EPOCHS = 8


def _series(level: float, seed: int) -> list[float]:
    """Eight epochs: a dear first epoch, then ±4% about ``level`` joules."""
    rng = random.Random(seed)
    return [level * (1.5 if t == 0 else 1.0) * (1 + 0.04 * rng.uniform(-1, 1))
            for t in range(EPOCHS)]  # fmt: skip


def _run(store, joules: list[float], group: str | None = None, **config) -> dict:
    """A run of ``joules`` epochs (the job passes ``config``, epochs included; ``group``: a
    node of that group), read back."""
    state = {"j": 0.0}
    meter = FakeMeter({"channels": [{"domain": "gpu", "device": "gpu:0",
                                     "fn": lambda k, s: state["j"]}]})  # fmt: skip
    grouped = {"group": group} if group else {}
    with track("sib", store=store, meters=[], meter_objects=[meter], sample_s=0,
               **grouped) as run:  # fmt: skip
        client.config(epochs=EPOCHS, **config)
        for i, j in enumerate(joules):
            with client.window("epoch", index=i):
                state["j"] += j
    with Store(store) as st:
        return st.get_run(run.id)


def _forecasts(run: dict) -> list[dict]:
    return [e for e in run["events"] if e["event"] == "forecast"]


def test_a_live_forecast_gets_the_prior_of_finished_siblings_and_a_narrower_interval(tmp_path):
    store = str(tmp_path / "s.db")
    for seed in range(3):
        _run(store, _series(50.0, seed), lr=0.1, seed=seed)
    _run(store, _series(90.0, 7), lr=0.2, seed=0)  # another config: not a sibling
    mine = _series(52.0, 11)
    run = _run(store, mine[:4], lr=0.1, seed=9)
    made = _forecasts(run)
    assert [f["epochs_done"] for f in made] == [1, 2, 3, 4]
    assert {f["siblings"] for f in made} == {3} and {f["siblings_note"] for f in made} == {""}
    after3 = made[2]
    alone = forecast(mine[:3], EPOCHS)  # the same epochs without siblings
    assert after3["high_j"] - after3["low_j"] < 0.5 * (alone.high_j - alone.low_j)
    assert after3["low_j"] <= sum(mine) <= after3["high_j"]
    assert forecast_prior_text(run) == "prior from 3 sibling runs"


def test_runs_of_another_config_or_not_finished_before_it_started_are_not_siblings(tmp_path):
    store = str(tmp_path / "s.db")
    first = _run(store, _series(50.0, 1), lr=0.1, seed=1)
    _run(store, _series(50.0, 2), lr=0.3, seed=2)  # another learning rate
    later = _run(store, _series(50.0, 3), lr=0.1, seed=3)
    with Store(store) as st:
        command = st.get_run(first["id"])["command"]
    config = {"epochs": EPOCHS, "lr": 0.1, "seed": 5}
    everything = read_siblings(locate(store), "new", command, config, "9999-12-31T00:00:00Z")
    assert len(everything) == 2  # seeds 1 and 3; lr 0.3 is another configuration
    # a run that started before the third one ended may use only the first
    assert len(read_siblings(locate(store), "new", command, config, later["started_at"])) == 1
    alone = _run(store, _series(50.0, 4)[:3], lr=0.7, seed=0)
    assert {f["siblings"] for f in _forecasts(alone)} == {0}
    assert _forecasts(alone)[-1]["siblings_note"] == "no finished sibling run in the store"


def _epoch(index: int, joules: float) -> dict:
    return {"name": "epoch", "info": {"index": index}, "energy": {"gpu": {"energy_j": joules}}}


def test_a_hung_store_gives_no_prior_with_the_reason_and_holds_nothing_up():
    release = threading.Event()
    calls = []

    def hung(config):
        calls.append(config)
        release.wait()  # a store that never answers (released at the test's end)
        return []

    listener = ForecastListener()
    listener.use_siblings(SiblingSource(["python", "x.py"], hung, timeout_s=0.05))
    try:
        listener.on_config({"params": {"epochs": EPOCHS, "lr": 0.1}})
        started = time.monotonic()
        for i, j in enumerate(_series(50.0, 1)[:4]):
            listener.on_window(_epoch(i, j))
        assert time.monotonic() - started < 30  # the wait is the lookup's 0.05 s, once
        made = listener.latest
        assert made.siblings == 0 and made.low_j is not None
        assert made.siblings_note == "the store did not answer within 0.05 s"
        assert calls == [{"epochs": EPOCHS, "lr": 0.1}]  # one lookup, never repeated
        assert "sibling" not in progress_text(made)
    finally:
        release.set()


def test_a_store_that_cannot_be_read_gives_no_prior_and_says_why():
    def broken(config):
        raise StoreError("store /x.db cannot be read (file is not a database)")

    listener = ForecastListener(epochs=EPOCHS)
    listener.use_siblings(SiblingSource(["python", "x.py"], broken))
    for i, j in enumerate(_series(50.0, 1)[:3]):
        listener.on_window(_epoch(i, j))
    assert listener.latest.siblings == 0
    assert listener.latest.siblings_note.startswith("the store could not be read for sibling")


def test_a_run_whose_sibling_lookup_hangs_finishes_with_the_reason_in_its_forecasts(
    tmp_path, monkeypatch
):
    release = threading.Event()

    def hung_source(location, run_id, command, started_at):
        return SiblingSource(command, lambda config: release.wait() and [], timeout_s=0.05)

    monkeypatch.setattr(SiblingSource, "of_store", staticmethod(hung_source))
    store = str(tmp_path / "s.db")
    try:
        run = _run(store, _series(50.0, 1)[:3], lr=0.1, seed=0)
    finally:
        release.set()
    assert run["status"] == "finished" and len(_forecasts(run)) == 3
    assert {f["siblings"] for f in _forecasts(run)} == {0}
    assert "did not answer within 0.05 s" in forecast_prior_text(run)


@pytest.mark.parametrize("siblings,words", [(1, "prior from 1 sibling run"),
                                            (4, "prior from 4 sibling runs")])  # fmt: skip
def test_the_progress_line_says_how_many_sibling_runs_the_prior_came_from(siblings, words):
    series = [_series(50.0, s) for s in range(max(siblings, 2))]
    prior = sibling_prior(series, EPOCHS)
    made = forecast(_series(50.0, 9)[:3], EPOCHS, prior=prior)
    assert made.siblings == len(series)
    made = dataclasses.replace(made, siblings=siblings)
    assert progress_text(made).endswith(words)


def test_one_sibling_or_shorter_ones_give_no_prior_and_say_so():
    short = _series(50.0, 2)[:6]  # a sibling of fewer epochs than this run has
    listener = ForecastListener(epochs=EPOCHS)
    listener.use_siblings(SiblingSource(["python", "x.py"], lambda c: [_series(50.0, 1), short]))
    for i, j in enumerate(_series(50.0, 3)[:3]):
        listener.on_window(_epoch(i, j))
    assert listener.latest.siblings == 0
    assert listener.latest.siblings_note == (
        "1 sibling run with all 8 epochs measured (a prior needs 2)"
    )


def test_a_node_of_a_multi_node_group_looks_no_siblings_up(tmp_path, monkeypatch):
    store = str(tmp_path / "s.db")
    for seed in range(3):
        _run(store, _series(50.0, seed), lr=0.1, seed=seed)
    looked_up = []
    of_store = SiblingSource.of_store

    def counted(*args):
        looked_up.append(args)
        return of_store(*args)

    monkeypatch.setattr(SiblingSource, "of_store", staticmethod(counted))
    node = _run(store, _series(50.0, 9)[:3], group="G1", lr=0.1, seed=9)
    assert looked_up == []  # 64 nodes must not make 64 lookups: siblings are single runs
    assert {f["siblings"] for f in _forecasts(node)} == {0}
    single = _run(store, _series(50.0, 8)[:3], lr=0.1, seed=8)
    assert len(looked_up) == 1 and {f["siblings"] for f in _forecasts(single)} == {3}


def test_the_summary_names_the_prior_or_why_not_but_says_nothing_of_an_empty_store():
    base = {"id": "r1", "status": "finished", "exit_code": 0, "duration_s": 1.0, "energy": {},
            "energy_j": None, "carbon": {}}  # fmt: skip

    def shown(siblings: int, note: str) -> str:
        out = io.StringIO()
        made = {"event": "forecast", "siblings": siblings, "siblings_note": note}
        print_summary(dict(base, events=[made]), file=out)
        return out.getvalue()

    assert "forecast: prior from 3 sibling runs" in shown(3, "")
    hung = "the store did not answer within 5 s"
    assert f"forecast: no sibling prior: {hung}" in shown(0, hung)
    assert "forecast:" not in shown(0, NO_SIBLINGS)  # a first run's: no news

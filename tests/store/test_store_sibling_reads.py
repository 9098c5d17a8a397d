"""What a live forecast reads of a run's siblings (:mod:`greentrain.store.sibling_reads`): the
candidates chosen in SQL -- finished single runs, ended by a given time, command starting with
given words -- a page at a time, and their epoch windows without their metrics."""

from __future__ import annotations

from fixtures.runs import make_run, set_path
from fixtures.store import write_store

from greentrain.store import Store
from greentrain.store.sibling_reads import command_like


def _store(target: str) -> str:
    runs = [make_run(f"r{i}", seed=i, epoch_energy_j=[10.0 + i, 11.0, 12.0]) for i in range(7)]
    set_path(runs[5], "command", ["python", "other.py", "--drop-rate", "0.0"])
    runs[6]["status"] = "failed"
    return str(write_store(target, runs))


def test_candidates_are_the_finished_runs_whose_command_starts_alike_read_a_page_at_a_time(
    store_target,
):
    with Store(_store(store_target), read_only=True, create=False) as st:
        pages, start, end = [], ["python", "train.py"], "9999-12-31T00:00:00Z"
        while page := st.sibling_candidates(
            end, command_start=start, exclude="r0", offset=2 * len(pages), limit=2
        ):
            pages.append([r["id"] for r in page])
        assert [len(p) for p in pages] == [2, 2]  # r1-r4: r0 excluded, r5 another command, r6
        assert sorted(i for p in pages for i in p) == ["r1", "r2", "r3", "r4"]  # failed
        one = st.sibling_candidates("9999-12-31T00:00:00Z", exclude="r0", limit=1)[0]
        assert set(one) == {"id", "command", "config"} and isinstance(one["config"], dict)
        assert st.sibling_candidates("2000-01-01T00:00:00Z") == []  # none ended by then


def test_epoch_runs_have_their_windows_energy_but_not_their_metrics(store_target):
    with Store(_store(store_target), read_only=True, create=False) as st:
        (run,) = st.epoch_runs(["r2"])
    assert [w["energy"]["gpu"]["energy_j"] for w in run["windows"]] == [12.0, 11.0, 12.0]
    assert run["metrics"] == []


def test_a_command_prefix_is_matched_as_stored_json_with_like_wildcards_escaped():
    assert command_like([]) is None
    assert command_like(["python", "a_b%.py"]) == '["python", "a\\_b\\%.py"%'

"""One meter per physical device: wrappers of one group on one host elect, through file locks,
who meters each GPU and the CPU packages; the others record "metered by run X", take a device
over when its meter's run ends, and the group counts every device once. Unrelated runs on the
host still split the machine's energy; mixing both never books more than was measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fixtures.together import together
from fixtures.waiting import wait_until

from greentrain.record.readings import EnergyReading
from greentrain.report.runs import parse_time
from greentrain.run.election import DeviceGate, Election
from greentrain.store import Store

PY = sys.executable


def test_the_first_wrapper_wins_a_device_and_a_sibling_takes_it_over_after(tmp_path):
    a, b = Election("g", "run-a", tmp_path), Election("g", "run-b", tmp_path)
    other_group = Election("h", "run-c", tmp_path)
    assert a.holds("gpu-GPU-1") and a.holds("cpu")
    assert not b.holds("gpu-GPU-1") and b.elsewhere == {"gpu-GPU-1": "run-a"}
    assert b.holds("gpu-GPU-2")  # a device nobody holds yet
    assert other_group.holds("gpu-GPU-1")  # groups never elect against each other
    assert b.retry() == []
    a.close()
    assert b.retry() == ["gpu-GPU-1"] and b.holds("gpu-GPU-1")
    summary = b.summary()
    assert summary["taken_over"]["gpu-GPU-1"]["from"] == "run-a" and summary["elsewhere"] == {}
    b.close()
    other_group.close()


def _gpu(j: float) -> dict:
    return {"fake": [EnergyReading("gpu", "gpu:0", j, "fake", {"uuid": "GPU-1"}),
                     EnergyReading("cpu", "tree", j / 10, "estimated", {})]}  # fmt: skip


def test_a_device_taken_over_counts_from_the_take_over_only(tmp_path):
    a, b = Election("g", "run-a", tmp_path), Election("g", "run-b", tmp_path)
    gate_a, gate_b = DeviceGate(a), DeviceGate(b)
    assert [r.energy_j for r in gate_a.apply(_gpu(5.0))["fake"]] == [5.0, 0.5]
    out = gate_b.apply(_gpu(100.0))["fake"]  # b's own counter of the same GPU
    assert [(r.domain, r.energy_j) for r in out] == [("cpu", 10.0)]  # its job's own estimate
    assert [r.domain for r in gate_b.apply(_gpu(130.0))["fake"]] == ["cpu"]
    a.close()
    assert b.retry() == ["gpu-GPU-1"]
    assert gate_b.apply(_gpu(150.0))["fake"][0].energy_j == 0.0  # counted from here
    assert gate_b.apply(_gpu(190.0))["fake"][0].energy_j == 40.0
    b.close()


def _fake(power_w: float, uuid: str = "GPU-shared") -> str:
    return json.dumps({"channels": [
        {"domain": "gpu", "device": "gpu:0", "power_w": power_w, "detail": {"uuid": uuid}},
        {"domain": "cpu", "device": "package-0", "power_w": power_w, "method": "rapl"},
    ]})  # fmt: skip


def _wrapper(store, seconds: float, *extra: str, env=None, job=None) -> subprocess.Popen:
    """``greentrain run`` (fake meter) of ``sleep seconds``, or of ``job``."""
    return subprocess.Popen(
        [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--sample-s", "0.2", *extra, "--", *(job or ["sleep", str(seconds)])],
        env=dict(os.environ, GREENTRAIN_FAKE_METER=_fake(100.0), **(env or {})),
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _span(run: dict) -> tuple[float, float]:
    """The run's wall labels, start to end: its meters start a little after its record does
    and its (monotonic) duration counts from there, so start + duration ends a little early."""
    return parse_time(run["started_at"]).timestamp(), parse_time(run["ended_at"]).timestamp()


def test_two_wrappers_of_a_group_on_one_host_count_each_device_once(tmp_path):
    store = tmp_path / "g.db"
    procs = [_wrapper(store, 1.0, "--group", "g1"), _wrapper(store, 2.5, "--group", "g1")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    [group] = Store(store).list_runs()
    spans = [_span(Store(store).get_run(n["run_id"])) for n in group["nodes"]]
    union = max(e for _, e in spans) - min(s for s, _ in spans)
    alone = sum(e - s for s, e in spans)  # what two unelected wrappers would book
    for domain in ("gpu", "cpu"):
        total = group["energy"][domain]["energy_j"]
        assert total <= 100.0 * union * 1.05  # never more than the device used
        assert total >= 100.0 * (union - 1.5)  # a hand-over loses at most about a second
        assert total < 0.9 * 100.0 * alone
    left = [n for n in group["nodes"] if n["metered_elsewhere"]]
    holder = {n["run_id"] for n in group["nodes"]} - {left[0]["run_id"]} if left else set()
    if left:  # the one that lost at the start names the winner
        assert set(left[0]["metered_elsewhere"].values()) == holder
    taken = [e for e in group["events"] if e["event"] == "device taken over"]
    assert left or taken  # either the long run won, or it took the devices over


def test_a_member_without_any_device_says_which_run_metered_them(tmp_path):
    store = tmp_path / "g.db"
    flag = tmp_path / "first-job-started"
    job = [PY, "-c", f"import time; open({str(flag)!r}, 'w').close(); time.sleep(3.0)"]
    first = _wrapper(store, 0, "--group", "g2", job=job)
    # its job runs: the wrapper elected itself before starting it
    wait_until(lambda: flag.exists() or first.poll() is not None, deadline_s=60, every_s=0.05)
    assert flag.exists()
    second = _wrapper(store, 0.2, "--group", "g2")
    assert second.wait(timeout=60) == 0 and first.wait(timeout=60) == 0
    [group] = Store(store).list_runs()
    late = min(group["nodes"], key=lambda n: n["duration_s"])
    run = Store(store).get_run(late["run_id"])
    assert run["energy"]["gpu"]["energy_j"] is None
    assert f"metered by run {group['nodes'][0]['run_id']}" in run["energy"]["gpu"]["reason"]
    assert set(late["metered_elsewhere"]) == {"gpu-GPU-shared", "cpu"}


def test_a_group_beside_an_unrelated_run_splits_and_never_books_more_than_measured(tmp_path):
    store = tmp_path / "g.db"
    job = together(tmp_path / "started", 3, 3.0)  # the three jobs overlap 3 s at least
    procs = [
        _wrapper(store, 0, "--group", "g3", job=job),
        _wrapper(store, 0, "--group", "g3", job=job),
        _wrapper(store, 0, job=job),
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    runs = Store(store).list_runs()
    assert sorted(r["id"] == "g3" for r in runs) == [False, True]
    members = [Store(store).get_run(n["run_id"]) for r in runs for n in r["nodes"]]
    spans = [_span(r) for r in members + [r for r in runs if r["id"] != "g3"]]
    union = max(e for _, e in spans) - min(s for s, _ in spans)
    for domain in ("gpu", "cpu"):
        booked = sum(r["energy"][domain]["energy_j"] for r in runs)
        assert booked <= 100.0 * union * 1.05
        assert booked >= 0.8 * 100.0 * min(e - s for s, e in spans)
    single = next(r for r in runs if r["id"] != "g3")
    assert "split" in single["energy"]["cpu"]  # it shared the machine with the group's runs
    assert pytest.approx(0.5, abs=0.3) == single["energy"]["gpu"]["split"]["share"]

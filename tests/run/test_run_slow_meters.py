"""Slow meters (CodeCarbon, Zeus) under ``greentrain run``: deferred until the job runs, so
their imports do not slow the wrapper's start; a job that never ran leaves them unstarted and
says why (fake hardware at the meter interface only)."""

from __future__ import annotations

import threading
import time

from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command
from greentrain.run.meterset import MeterSet
from greentrain.store import Store


class SlowFake(FakeMeter):
    """The fake meter, marked slow; records when it was probed."""

    slow_start = True

    def __init__(self) -> None:
        super().__init__()
        self.name = "slowfake"
        self.probed = threading.Event()

    def probe(self):
        self.probed.set()
        return super().probe()


def test_deferred_slow_meters_begin_only_when_asked_and_after_the_delay():
    slow = SlowFake()
    ready: list[str] = []
    meters = MeterSet(meters=[FakeMeter(), slow])
    meters.start(background_slow=True, defer_slow=True, on_ready=lambda n, m: ready.append(n))
    assert "fake" in meters.running and not slow.probed.wait(0.2)  # the fast one runs now
    meters.start_deferred(delay_s=0.05)
    assert slow.probed.wait(5.0)
    deadline = time.monotonic() + 5.0
    while "slowfake" not in meters.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "slowfake" in meters.running and ready == ["slowfake"]
    meters.stop()


def test_a_slow_meter_whose_job_never_ran_is_recorded_as_not_started():
    slow = SlowFake()
    meters = MeterSet(meters=[slow])
    meters.start(background_slow=True, defer_slow=True)
    meters.stop()
    (status,) = meters.statuses()
    assert not status["available"] and "not started" in status["reason"]
    assert not slow.probed.is_set()


def test_a_job_shorter_than_the_delay_never_starts_the_slow_meter(tmp_path):
    slow = SlowFake()
    store = tmp_path / "s.db"
    result = run_command(["true"], store=str(store), meters=[],
                         meter_objects=[FakeMeter(), slow], summary=False)  # fmt: skip
    assert result.exit_code == 0
    time.sleep(0.5)  # past the delay: the deferred start saw the set stopped and returned
    assert not slow.probed.is_set()
    run = Store(store).get_run(Store(store).list_runs()[0]["id"])
    status = next(m for m in run["meters"] if m["meter"] == "slowfake")
    assert not status["available"] and "still starting" in status["reason"]

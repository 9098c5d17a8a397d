"""The meters' shared polling thread: calls, stops, keeps the first error quietly."""

from __future__ import annotations

import threading

import pytest

from greentrain.meters.poller import Poller


def test_poller_calls_until_stopped_and_stop_is_idempotent():
    calls = threading.Semaphore(0)
    poller = Poller(calls.release, 0.001, "test-poller")
    poller.start()
    for _ in range(3):  # three calls arrive
        assert calls.acquire(timeout=5)
    poller.stop()
    assert not poller.running
    poller.stop()
    assert poller.error is None


def test_poller_keeps_the_first_error_and_stops_polling():
    seen = []

    def boom():
        seen.append(1)
        raise OSError("sensor gone")

    poller = Poller(boom, 0.001, "test-poller")
    poller.start()
    poller._thread.join(timeout=5)  # the loop ends by itself at the first error
    assert isinstance(poller.error, OSError) and len(seen) == 1
    poller.stop()


def test_poller_rejects_a_non_positive_interval():
    with pytest.raises(ValueError, match="> 0"):
        Poller(lambda: None, 0, "test-poller")

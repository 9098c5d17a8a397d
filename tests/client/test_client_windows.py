"""Windows are per thread of control: a window applies to what its own thread (or asyncio
task) logs; a thread without a window of its own logs into the main thread's window, or none."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from greentrain import client
from greentrain.meters.fake import FakeMeter
from greentrain.run import track
from greentrain.store import Store

LOGGERS, WINDOWED, ENTRIES = 8, 2, 60


def _run_threads(main_window: str | None):
    """8 threads log while 2 other threads each hold a window open (barriers make the windows
    open during every logger's entries), then the window threads log inside theirs."""
    opened = threading.Barrier(LOGGERS + WINDOWED)
    logged = threading.Barrier(LOGGERS + WINDOWED)

    def logger(i: int) -> None:
        opened.wait(timeout=60)  # both windows are open now ...
        for n in range(ENTRIES):
            client.log(step=n, who=f"logger{i}")
        logged.wait(timeout=60)  # ... and stay open until every logger is done

    def windowed(i: int) -> None:
        with client.window(f"w{i}"):
            opened.wait(timeout=60)
            logged.wait(timeout=60)
            for n in range(ENTRIES):
                client.log(step=n, who=f"windowed{i}", expect=f"w{i}")

    threads = [threading.Thread(target=logger, args=(i,)) for i in range(LOGGERS)]
    threads += [threading.Thread(target=windowed, args=(i,)) for i in range(WINDOWED)]
    with client.window(main_window) if main_window else contextlib.nullcontext():
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)


def test_eight_logging_threads_never_carry_the_windows_of_two_window_threads(tmp_path):
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        _run_threads(main_window=None)
    metrics = Store(tmp_path / "g.db").get_run(run.id)["metrics"]
    assert len(metrics) == (LOGGERS + WINDOWED) * ENTRIES
    from_loggers = [m for m in metrics if m["who"].startswith("logger")]
    from_windowed = [m for m in metrics if m["who"].startswith("windowed")]
    assert {m["window"] for m in from_loggers} == {None}
    assert all(m["window"] == m["expect"] for m in from_windowed)


def test_threads_without_a_window_log_into_the_main_threads_window(tmp_path):
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        _run_threads(main_window="epoch")
        client.log(step=0, who="main-after")
    metrics = Store(tmp_path / "g.db").get_run(run.id)["metrics"]
    assert {m["window"] for m in metrics if m["who"].startswith("logger")} == {"epoch"}
    assert all(m["window"] == m["expect"] for m in metrics if m["who"].startswith("windowed"))
    assert [m["window"] for m in metrics if m["who"] == "main-after"] == [None]


def test_each_asyncio_task_logs_into_its_own_window(tmp_path):
    async def task(name: str, gate: asyncio.Event, other: asyncio.Event) -> None:
        with client.window(name):
            gate.set()
            await other.wait()  # both windows are open at once
            client.log(step=0, who=name)

    async def main() -> None:
        a, b = asyncio.Event(), asyncio.Event()
        await asyncio.wait_for(asyncio.gather(task("ta", a, b), task("tb", b, a)), 60)
        client.log(step=1, who="outside")

    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter()]) as run:
        asyncio.run(main())
    metrics = Store(tmp_path / "g.db").get_run(run.id)["metrics"]
    assert {m["who"]: m["window"] for m in metrics} == {"ta": "ta", "tb": "tb", "outside": None}

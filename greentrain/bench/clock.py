"""How the benchmark times work: host wall time, and on a GPU the GPU's own time.

* :class:`StepClock` marks the phases of a train step (forward + loss, backward, optimizer
  step). Wall seconds come from ``time.perf_counter`` with one synchronisation before and one
  after the step (none in between, so the GPU's pipeline is left alone). On CUDA every mark is
  also a CUDA event, so each phase has a GPU time: the GPU timeline between its events, which
  in eager mode includes gaps where the GPU waited for the host to launch kernels (with CUDA
  graphs there are none).
* :func:`graph_replay_seconds` times a piece of GPU work captured in a CUDA graph and replayed
  ``reps`` times between two events: the GPU's time for the work alone, no host overhead. The
  per-layer table uses it on CUDA.

Seconds throughout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

PHASES = ("forward", "backward", "optimizer")


class StepClock:
    """Marks of one train step on ``device``; read with :meth:`wall` and :meth:`gpu`."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self._wall: list[float] = []
        self._events: list[Any] = []

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        self.mark()

    def mark(self) -> None:
        """End of a phase (or the step's start)."""
        self._wall.append(time.perf_counter())
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events.append(event)

    def stop(self) -> None:
        self.mark()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._wall[-1] = time.perf_counter()

    def wall(self) -> dict[str, float]:
        """Host seconds: ``step`` and each phase (phases exclude the final synchronisation)."""
        w = self._wall
        out = {"step": w[-1] - w[0]}
        out.update({p: b - a for p, a, b in zip(PHASES, w, w[1:], strict=False)})
        return out

    def gpu(self) -> dict[str, float] | None:
        """GPU seconds between the marks (None off CUDA)."""
        if not self.cuda:
            return None
        e = self._events
        out = {"step": e[0].elapsed_time(e[-1]) / 1e3}
        out.update({p: a.elapsed_time(b) / 1e3 for p, a, b in zip(PHASES, e, e[1:], strict=False)})
        return out


def graph_replay_seconds(work: Callable[[], Any], reps: int) -> float:
    """GPU seconds of one ``work()``: captured in a CUDA graph, replayed ``reps`` times.

    Raises RuntimeError (torch's) when ``work`` cannot be captured.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the graph (allocator, cuDNN plans)
        for _ in range(3):
            work()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        work()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    graph.replay()
    start.record()
    for _ in range(reps):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / reps

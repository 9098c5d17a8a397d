"""How the benchmark times work: host wall time, and on a GPU the GPU's own time.

* :class:`StepClock` marks the phases of a train step (forward + loss, backward, optimizer
  step). Wall seconds come from ``time.perf_counter`` with one synchronisation before and one
  after the step (none in between, so the GPU's pipeline is left alone). On CUDA every mark is
  also a CUDA event, so each phase has a GPU time: the GPU timeline between its events, which
  in eager mode includes gaps where the GPU waited for the host to launch kernels (with CUDA
  graphs there are none).
* :class:`CapturedBackward` captures one layer's backward in a CUDA graph (its forward run on
  the capture stream) and times ``replays`` replays between two events: the GPU's time for the
  backward alone, no host overhead. The per-layer table uses it on CUDA.

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


class CapturedBackward:
    """One layer's backward captured in a CUDA graph, to time its GPU work alone.

    ``forward()`` runs the layer's forward and returns ``(output, grad targets, grad_output)``.
    It runs on a side stream, and the backward is captured on that same stream: autograd runs
    each backward op on the stream its forward op ran on, so a forward on the default stream
    would send the backward's kernels to a stream that is not being captured, and the capture
    would fail. Warm-up backwards (allocator, cuDNN plans, Triton autotuning) run on the side
    stream before the capture.

    Raises RuntimeError (torch's) when the backward cannot be captured.
    """

    def __init__(self, forward: Callable[[], tuple[Any, list, Any]], warmup: int = 3) -> None:
        self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out, targets, grad = forward()
            for _ in range(warmup):
                torch.autograd.grad(out, targets, grad, retain_graph=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=self.stream):
            self.grads = torch.autograd.grad(out, targets, grad, retain_graph=True)
        torch.cuda.current_stream().wait_stream(self.stream)
        self._keep = (out, targets, grad)  # the autograd graph the replays walk

    def seconds(self, replays: int) -> float:
        """GPU seconds of one backward: ``replays`` replays between two events, divided."""
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(self.stream):
            self.graph.replay()  # untimed: the first replay uploads the graph
            start.record()
            for _ in range(replays):
                self.graph.replay()
            end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / replays

"""Joules per step for the benchmark: the GPU's NVML total-energy counter, read around a step.

``nvmlDeviceGetTotalEnergyConsumption`` returns millijoules since the driver loaded (Volta and
newer). The benchmark reads it before and after each train step; the difference is that step's
GPU energy in joules. The counter is updated by the driver every few milliseconds, so a single
short step is quantized: the benchmark reports the median *and* the mean over all steps.

The GPU is found by :func:`greentrain.meters.nvml_devices.gpu_for_cuda_device`, the meters'
own device lookup (UUIDs, MIG instances through their parent GPU, ``CUDA_VISIBLE_DEVICES``).
There is no such counter on CPU here (no RAPL on this kind of machine), and the bench never
reports a missing figure as 0: :func:`open_step_energy` raises
:class:`~greentrain.errors.MeterUnavailable` with the reason instead. pynvml is imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from greentrain.errors import MeterUnavailable
from greentrain.meters import nvml_devices


class StepEnergyCounter:
    """Cumulative GPU energy in joules from NVML; :meth:`read_j` is cheap (one driver call)."""

    def __init__(self, read_mj: Callable[[], int], label: str) -> None:
        self._read_mj = read_mj
        self.label = label
        self.source = "nvml:counter"

    def read_j(self) -> float:
        """Joules since the driver loaded (only differences are meaningful)."""
        return self._read_mj() / 1000.0


def open_step_energy(device: str) -> StepEnergyCounter:
    """A per-step energy counter for ``device`` (``"cuda"``, ``"cuda:1"``).

    Raises:
        MeterUnavailable: on CPU, without pynvml, or when the GPU has no energy counter.
    """
    kind, _, index_text = device.partition(":")
    if kind != "cuda":
        raise MeterUnavailable(
            f"n/a: no NVML on device {device!r} (energy per step is measured on NVIDIA GPUs only)",
            "run with --device cuda on an NVIDIA GPU, or meter the whole run with greentrain run",
        )
    nv = nvml_devices.load_library()  # MeterUnavailable("... not installed", fix) without it
    index = int(index_text) if index_text else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    try:
        nv.nvmlInit()
        handle, name = nvml_devices.gpu_for_cuda_device(
            nv, index, str(uuid) if uuid is not None else None,
            os.environ.get("CUDA_VISIBLE_DEVICES"),
        )  # fmt: skip
        nv.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nv.NVMLError as err:
        raise MeterUnavailable(
            f"n/a: NVML energy counter unavailable on cuda:{index} ({err})",
            "needs a Volta-or-newer NVIDIA GPU and driver",
        ) from None
    return StepEnergyCounter(
        lambda: nv.nvmlDeviceGetTotalEnergyConsumption(handle), f"cuda:{index} {name}"
    )

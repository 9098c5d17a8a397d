"""Fused selection kernels for the sparse backward, and the choice of backend.

``backend="aten"`` runs the selection with PyTorch operators (``select.py``); ``"triton"``
with the Triton kernels of ``ssprop.kernels.triton_select`` (one fp32 pass for the
per-channel |grad| sums, one coalesced pass for each gather, tensor-core padding written as
zero channels by the gather itself); ``"auto"`` picks triton for CUDA tensors when triton
imports and aten otherwise (always aten on the CPU).

Triton is imported lazily, on the first ``triton_available()`` / ``load()`` call: importing
ssprop never imports triton.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from types import ModuleType

import torch


@functools.cache
def triton_available() -> bool:
    """True when the triton package can be imported (checked once, then cached)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken install counts as absent
        return False
    return True


def load() -> ModuleType:
    """The Triton selection kernels module (imports triton)."""
    from ssprop.kernels import triton_select

    return triton_select


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The backend that runs for tensors on ``device``: ``"aten"`` or ``"triton"``.

    ``"triton"`` on a non-CUDA device raises ValueError unless ``TRITON_INTERPRET=1`` (the
    Triton interpreter runs the kernels on CPU tensors, for tests).
    """
    if backend == "aten":
        return backend
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    if backend == "auto":
        return "triton" if kind == "cuda" and triton_available() else "aten"
    if kind != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"backend='triton' runs on CUDA tensors, got {kind} ones "
            "(or set TRITON_INTERPRET=1 before importing triton); use backend='auto'"
        )
    return backend

"""Per-epoch checkpoints that resume a run exactly and load with ``torch.load(weights_only=True)``.

A checkpoint holds the model and optimizer state, the drop scheduler's state, the RNG states of
torch (CPU and every CUDA device), numpy and Python, the last finished epoch and any plain
``extra`` data (history, best accuracy). RNG states are stored as tensors and plain ints/floats
so that the safe unpickler accepts them. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"

logger = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """Every RNG state of this process as tensors and plain types."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate(
        (py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"])
    )


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    epoch: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<directory>/last.pt`` for the finished ``epoch`` (0-based); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "extra": extra or {},
    }
    path = directory / LAST
    tmp = directory / (LAST + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with the safe unpickler (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def restore(
    checkpoint: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
) -> int:
    """Load states from ``checkpoint`` into the objects and the RNGs; return the next epoch."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    return int(checkpoint["epoch"]) + 1


def resume(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    map_location: str | torch.device = "cpu",
    announce: bool = True,
) -> tuple[int, dict[str, Any]]:
    """Continue from ``<directory>/last.pt``: (next epoch, the checkpoint's ``extra`` data).

    Without a checkpoint there: ``(0, {})``, and (``announce``) one line on stderr saying the
    run starts at epoch 1.
    """
    path = Path(directory) / LAST
    if not path.is_file():
        if announce:
            logger.info("resume: no checkpoint at %s; starting at epoch 1", path)
        return 0, {}
    state = load_checkpoint(path, map_location=map_location)
    next_epoch = restore(state, model=model, optimizer=optimizer, scheduler=scheduler)
    return next_epoch, dict(state.get("extra") or {})

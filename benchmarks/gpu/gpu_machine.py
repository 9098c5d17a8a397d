"""What the lent GPU machine's image holds, and a stand-in for it on the development machine.

The image (``/work/.library/device/KINDS.md`` of this workplace, read 2026-11-17) has Python
3.12, torch 2.11, Triton 3.6 and common ML packages (numpy, pandas, scipy, typer, rich,
nvidia-ml-py, pytest ...), but none of :data:`ABSENT`, and no package registry: what the run
needs beyond the image travels as wheels in the working tree (:mod:`gpu_wheels`).

:func:`hiding_env` builds the stand-in: a ``sitecustomize.py`` on ``PYTHONPATH`` that puts a
finder first on ``sys.meta_path`` which refuses the absent packages (``ModuleNotFoundError``,
as on the machine) unless the carried wheels' folder holds them. Any Python started with that
environment sees the development venv minus what the image lacks, plus the carried wheels.
"""

from __future__ import annotations

import os
from pathlib import Path

# top-level modules of the packages greentrain depends on that the GPU machine's image lacks
ABSENT = ("codecarbon", "zeus", "diffusers", "submitit", "psycopg", "streamlit", "torch_fidelity")

_SITECUSTOMIZE = '''"""Written by benchmarks/gpu/gpu_machine.py: hide what the GPU image lacks."""
import importlib.machinery
import os
import sys

_HIDDEN = set(os.environ.get("GPU_MACHINE_ABSENT", "").split(","))
_CARRIED = [p for p in os.environ.get("GPU_MACHINE_CARRIED", "").split(os.pathsep) if p]


class _AbsentOnGpuMachine:
    """Finds a hidden package only among the carried wheels; else it is not installed."""

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in _HIDDEN or path is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, _CARRIED)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the GPU machine)",
                                      name=name)
        return spec


sys.meta_path.insert(0, _AbsentOnGpuMachine())
'''


def hiding_env(shim_dir: Path, carried: Path | None, base: dict[str, str] | None = None) -> dict:
    """Environment for a Python that sees only what the GPU machine has (+ ``carried``).

    Writes ``sitecustomize.py`` into ``shim_dir``; returns a copy of ``base`` (default
    ``os.environ``) with ``PYTHONPATH`` = shim, carried wheels' folder, then the old path.
    """
    shim_dir.mkdir(parents=True, exist_ok=True)
    (shim_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ if base is None else base)
    parts = [str(shim_dir)] + ([str(carried)] if carried else [])
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["GPU_MACHINE_ABSENT"] = ",".join(ABSENT)
    env["GPU_MACHINE_CARRIED"] = str(carried) if carried else ""
    return env

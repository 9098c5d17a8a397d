"""Describe the machine and code a run ran on: host, CPU/GPU models, driver, CUDA, torch, git.

Only descriptions are collected -- never the values of environment variables (they may hold
tokens). Nothing here imports torch (its version and CUDA build are read from package metadata
and ``torch/version.py``); NVML is queried lazily and only if it is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def torch_info() -> tuple[str | None, str | None]:
    """(torch version, CUDA version torch was built with) without importing torch."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None, None
    cuda = None
    try:
        spec = importlib.util.find_spec("torch")
        if spec and spec.submodule_search_locations:
            text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text(
                encoding="utf-8"
            )
            m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
            cuda = m.group(1) if m else None
    except (OSError, ValueError):
        cuda = None
    return version, cuda


def gpu_info() -> tuple[list[str], str | None]:
    """(GPU model names, NVIDIA driver version) via NVML if present; ([], None) otherwise."""
    try:
        import pynvml  # lazy: hardware library
    except Exception:
        return [], None
    try:
        pynvml.nvmlInit()
    except Exception:
        return [], None
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else str(driver)
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names, driver
    except Exception:
        return [], None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def machine_info() -> dict[str, Any]:
    """The run object's ``env`` dict (CONTRACTS.md)."""
    torch_version, cuda_version = torch_info()
    gpus, driver = gpu_info()
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "gpu_models": gpus,
        "driver_version": driver,
        "cuda_version": cuda_version,
        "torch_version": torch_version,
        "python": platform.python_version(),
    }


def _git(cwd: str, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", cwd, *args],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_info(cwd: str) -> dict[str, Any]:
    """``{"commit": sha|None, "dirty": bool|None}`` of the repository containing ``cwd``.

    ``commit`` is None outside a repository or before the first commit; ``dirty`` is None
    outside a repository.
    """
    if _git(cwd, "rev-parse", "--is-inside-work-tree") is None:
        return {"commit": None, "dirty": None}
    head = _git(cwd, "rev-parse", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": head.strip() if head else None,
        "dirty": bool(status.strip()) if status is not None else None,
    }

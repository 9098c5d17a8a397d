"""Print one JSON object: what the machine is (GPU model, driver, memory, SMs, NVML energy
counter), what it runs (Python, torch, CUDA, cuDNN, Triton, greentrain's needs) and which of
the packages the GPU image lacks are importable. The run's first stage; runs on CPU too.

    python benchmarks/gpu/gpu_versions.py
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_machine import ABSENT  # noqa: E402

PACKAGES = ("torch", "triton", "numpy", "typer", "rich", "click", "nvidia-ml-py", "pytest",
            "diffusers", "scipy", "pandas")  # fmt: skip


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    """Whether ``module`` can be found (not imported: some have import-time side effects)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _gpu() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": "torch.cuda.is_available() is False"}
    props = torch.cuda.get_device_properties(0)
    info = {
        "available": True,
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_bytes": int(props.total_memory),
        "multiprocessors": int(props.multi_processor_count),
        "count": torch.cuda.device_count(),
    }
    try:
        import pynvml as nv

        nv.nvmlInit()
        handle = nv.nvmlDeviceGetHandleByIndex(0)
        info["driver"] = nv.nvmlSystemGetDriverVersion()
        info["power_limit_w"] = nv.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0
        info["energy_counter_mj"] = int(nv.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception as err:  # noqa: BLE001 - reported, not raised: the run goes on
        info["nvml_error"] = f"{type(err).__name__}: {err}"
    return info


def collect() -> dict:
    """The machine's description (see the module docstring)."""
    import torch

    from ssprop import kernels

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": _gpu(),
        "ssprop_backend_auto": kernels.resolve_backend("auto", device),
        "packages": {name: _version(name) for name in PACKAGES},
        "importable_of_absent_on_image": {module: _importable(module) for module in ABSENT},
    }


if __name__ == "__main__":
    print(json.dumps(collect(), indent=2))

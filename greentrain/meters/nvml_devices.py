"""Which NVML devices a process sees: ``CUDA_VISIBLE_DEVICES`` resolved as CUDA resolves it.

Unset -> all GPUs; a comma-separated list of indices, ``GPU-<uuid>`` or ``MIG-<uuid>`` (unique
prefixes allowed); parsing stops at the first invalid entry; empty or ``-1`` -> no GPU. Integer
entries index NVML's enumeration (PCI bus order), which matches CUDA's only with
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; UUIDs are unambiguous. A MIG instance resolves to its parent
GPU (NVML has no per-MIG energy). Used by the NVML meter and by the benchmark's energy blocks,
so both find the same GPU.
"""

from __future__ import annotations

from typing import Any

from greentrain.errors import MeterUnavailable

INSTALL_FIX = "pip install nvidia-ml-py"
DRIVER_FIX = "run on a machine with an NVIDIA GPU and its driver installed (check `nvidia-smi`)"


def text(value: Any) -> str:
    """An NVML string (bytes in old bindings) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_visible_devices(value: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` entries in order; None when unset (all GPUs visible)."""
    if value is None:
        return None
    entries = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry (e.g. "-1" hides everything after)
        entries.append(entry)
    return entries


def load_library() -> Any:
    """The ``pynvml`` module (package nvidia-ml-py); MeterUnavailable when it is missing."""
    try:
        import pynvml  # noqa: PLC0415 - hardware library, imported lazily
    except ImportError as err:
        raise MeterUnavailable("package nvidia-ml-py (pynvml) not installed", INSTALL_FIX) from err
    return pynvml


def _resolve(nv: Any, entry: str, handles: list, uuids: list[str]) -> tuple | None:
    """(handle, uuid, mig_uuid|None) for one CUDA_VISIBLE_DEVICES entry, or None.

    A MIG instance resolves to its parent GPU's handle (NVML has no per-MIG energy).
    """
    if entry.isdigit():
        i = int(entry)
        return (handles[i], uuids[i], None) if i < len(handles) else None
    if entry.startswith("GPU-"):
        matches = [i for i, u in enumerate(uuids) if u.startswith(entry)]
        return (handles[matches[0]], uuids[matches[0]], None) if len(matches) == 1 else None
    if entry.startswith("MIG-"):
        if entry.startswith("MIG-GPU-"):  # old form MIG-GPU-<uuid>/<gi>/<ci>
            gpu_uuid = entry[len("MIG-") :].split("/")[0]
            matches = [i for i, u in enumerate(uuids) if u.startswith(gpu_uuid)]
            if len(matches) != 1:
                return None
            return handles[matches[0]], uuids[matches[0]], entry
        try:
            mig_handle = nv.nvmlDeviceGetHandleByUUID(entry)
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig_handle)
        except Exception:  # noqa: BLE001 - unknown MIG uuid ends the list, like CUDA
            return None
        return parent, text(nv.nvmlDeviceGetUUID(parent)), entry
    return None


def _all_gpus(nv: Any) -> tuple[list, list[str]]:
    handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(int(nv.nvmlDeviceGetCount()))]
    return handles, [text(nv.nvmlDeviceGetUUID(h)) for h in handles]


def visible_gpus(nv: Any, cuda_visible_devices: str | None) -> list[tuple]:
    """(handle, uuid, mig_uuid|None) of each GPU the job sees, in CUDA's order for that
    ``CUDA_VISIBLE_DEVICES`` value (see the module docstring). NVML must be initialised."""
    handles, uuids = _all_gpus(nv)
    entries = parse_visible_devices(cuda_visible_devices)
    if entries is None:
        return [(h, u, None) for h, u in zip(handles, uuids, strict=True)]
    chosen = []
    for entry in entries:
        found = _resolve(nv, entry, handles, uuids)
        if found is None:
            break  # like CUDA: an invalid entry ends the list
        chosen.append(found)
    return chosen


def gpu_for_cuda_device(
    nv: Any, index: int, uuid: str | None, cuda_visible_devices: str | None
) -> tuple[Any, str]:
    """(NVML handle, model name) of the GPU behind CUDA device ``index`` as a process sees it.

    Matched by the device's UUID when torch reports one (a GPU, or a MIG instance, which
    resolves to its parent GPU), else by position among :func:`visible_gpus`. NVML must be
    initialised; NVML errors propagate.
    """
    if uuid:
        text = str(uuid)
        bare = text.split("-", 1)[1] if text.startswith(("GPU-", "MIG-")) else text
        handles, uuids = _all_gpus(nv)
        for entry in (f"GPU-{bare}", f"MIG-{bare}"):
            found = _resolve(nv, entry, handles, uuids)
            if found is not None:
                return found[0], text(nv.nvmlDeviceGetName(found[0]))
    gpus = visible_gpus(nv, cuda_visible_devices)
    if index >= len(gpus):
        raise MeterUnavailable(
            f"CUDA device {index} is not among the {len(gpus)} GPUs NVML sees",
            "check CUDA_VISIBLE_DEVICES",
        )
    return gpus[index][0], text(nv.nvmlDeviceGetName(gpus[index][0]))

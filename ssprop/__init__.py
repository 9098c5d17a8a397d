"""ssprop: scheduled sparse back-propagation (ssProp, arXiv 2408.12561) for PyTorch.

Depends on torch only; knows nothing of greentrain.

    import ssprop
    ssprop.convert(model, drop_rate=0.8)          # nn.Conv2d -> ssprop.SparseConv2d, in place
    sched = ssprop.schedulers.build("bar", model, 0.8, total_steps=..., steps_per_epoch=...)

The names below load on first use, so ``import ssprop.schedule_names`` (the schedules' names, for
a command line's help) imports no torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("flops", "kernels", "ops", "schedule_names", "schedulers", "select", "settings")
# public name -> the submodule that defines it (the submodule itself for those of _SUBMODULES)
_LAZY: dict[str, str] = {
    "SparseConv2d": "ssprop.conv",
    "SparseLinear": "ssprop.linear",
    "convert": "ssprop.convert",
    "revert": "ssprop.convert",
    "set_drop_rate": "ssprop.convert",
    "sparse_modules": "ssprop.convert",
    "flops": "ssprop.flops",
    "kernels": "ssprop.kernels",
    "ops": "ssprop.ops",
    "schedule_names": "ssprop.schedule_names",
    "schedulers": "ssprop.schedulers",
    "select": "ssprop.select",
    "settings": "ssprop.settings",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'ssprop' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``ssprop.convert`` is the function, whichever import loads the submodule of that name:
    the import system's ``setattr(ssprop, "convert", <module>)`` is ignored."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "convert" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

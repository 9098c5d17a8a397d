"""ssprop: scheduled sparse back-propagation (ssProp, arXiv 2408.12561) for PyTorch.

Depends on torch only; knows nothing of greentrain. Public names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SparseConv2d": "ssprop.conv",
    "SparseLinear": "ssprop.linear",
    "convert": "ssprop.convert",
    "revert": "ssprop.convert",
    "sparse_modules": "ssprop.convert",
    "set_drop_rate": "ssprop.convert",
    "schedulers": None,
    "flops": None,
    "select": None,
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ssprop' has no attribute {name!r}")
    module_name = _EXPORTS[name]
    if module_name is None:
        return importlib.import_module(f"ssprop.{name}")
    return getattr(importlib.import_module(module_name), name)

"""ssprop: scheduled sparse back-propagation (ssProp, arXiv 2408.12561) for PyTorch.

Depends on torch only; knows nothing of greentrain.

    import ssprop
    ssprop.convert(model, drop_rate=0.8)          # nn.Conv2d -> ssprop.SparseConv2d, in place
    sched = ssprop.schedulers.build("bar", model, 0.8, total_steps=..., steps_per_epoch=...)
"""

from __future__ import annotations

from ssprop import flops, kernels, ops, schedulers, select, settings
from ssprop.conv import SparseConv2d
from ssprop.convert import convert, revert, set_drop_rate, sparse_modules
from ssprop.linear import SparseLinear

__version__ = "0.1.0"

__all__ = [
    "SparseConv2d",
    "SparseLinear",
    "__version__",
    "convert",
    "flops",
    "kernels",
    "ops",
    "revert",
    "schedulers",
    "select",
    "settings",
    "set_drop_rate",
    "sparse_modules",
]

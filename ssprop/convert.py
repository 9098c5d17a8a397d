"""Swap ``nn.Conv2d`` (and optionally ``nn.Linear``) layers for their sparse versions, in place.

Like ``nn.SyncBatchNorm.convert_sync_batchnorm``: the new module takes over the old one's state
(the same ``Parameter`` objects, buffers, training flag and registered hooks), so ``state_dict``
keys, optimizer state and hooks keep working. Only layers whose type is exactly ``nn.Conv2d`` /
``nn.Linear`` are converted; subclasses (e.g. already-sparse layers, quantization wrappers,
``MultiheadAttention``'s ``out_proj``) are left alone. ``nn.Conv2d`` itself is never patched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

from ssprop import settings
from ssprop.conv import SparseConv2d
from ssprop.linear import SparseLinear

RatesArg = Mapping[str, float] | Callable[[str, nn.Module], "float | None"] | None
IncludeArg = Callable[[str, nn.Module], bool] | None

_SPARSE_ONLY = (
    "_drop_rate", "target_drop_rate", "selection", "dims", "backend", "min_channels",
    "_always_dense", "_reselect_every", "_reselect_state",
)  # fmt: skip
_SWAPS: dict[type, type] = {nn.Conv2d: SparseConv2d, nn.Linear: SparseLinear}


def _swap(module: nn.Module, new_cls: type, **sparse) -> nn.Module:
    """A ``new_cls`` instance that takes over ``module``'s state (params, buffers, hooks).

    ``sparse``: the ``_configure_sparse`` settings when ``new_cls`` is a sparse layer.
    """
    new = new_cls.__new__(new_cls)
    new.__dict__.update(module.__dict__)
    # own buffer containers: the reselect cache must not appear in (or vanish from) the other
    new._buffers = dict(module._buffers)
    new._non_persistent_buffers_set = set(module._non_persistent_buffers_set)
    if new_cls in (SparseConv2d, SparseLinear):
        drop_rate, selection, dims = (
            sparse.pop("drop_rate"),
            sparse.pop("selection"),
            sparse.pop("dims"),
        )
        new._configure_sparse(drop_rate, selection, dims, **sparse)
    else:
        for key in _SPARSE_ONLY:
            new.__dict__.pop(key, None)
        new._buffers.pop(settings.CACHE_BUFFER, None)
        new._non_persistent_buffers_set.discard(settings.CACHE_BUFFER)
    return new


def _set_child(root: nn.Module, name: str, child: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, child)


def convert(
    model: nn.Module,
    drop_rate: float = 0.8,
    *,
    selection: str = "topk",
    dims: str = "channel",
    linear: bool = False,
    include: IncludeArg = None,
    rates: RatesArg = None,
    backend: str = "auto",
    reselect_every: int = 1,
    min_channels: int = 0,
) -> nn.Module:
    """Replace every ``nn.Conv2d`` (and ``nn.Linear`` if ``linear``) of ``model`` in place.

    ``include(name, module) -> bool`` keeps a layer dense when it returns False (e.g. the stem).
    ``rates``: dict qualified-name -> drop rate, or callable ``(name, module) -> rate | None``
    (None = use ``drop_rate``); each layer's rate becomes its ``drop_rate`` and
    ``target_drop_rate``. Linear layers always use ``dims="channel"``. ``backend``,
    ``reselect_every`` and ``min_channels`` are passed to every converted layer (see
    ``ssprop.settings``; layers under ``min_channels`` are converted but run dense). Returns
    ``model`` (or the new module if ``model`` itself is a convertible layer).
    """
    settings.validate_drop_rate(drop_rate)
    settings.validate_selection(selection)
    settings.validate_dims(dims)
    settings.validate_backend(backend)
    settings.validate_reselect_every(reselect_every)
    settings.validate_min_channels(min_channels)
    if include is not None and not callable(include):
        raise ValueError("include must be a callable (name, module) -> bool; got a non-callable")
    if isinstance(rates, Mapping):
        names = {name for name, _ in model.named_modules()}
        unknown = sorted(set(rates) - names)
        if unknown:
            raise ValueError(
                f"rates names no such layer: {', '.join(unknown)}; use names from "
                "model.named_modules()"
            )
        for rate in rates.values():
            settings.validate_drop_rate(rate)
    elif rates is not None and not callable(rates):
        raise ValueError("rates must be a dict name->rate or a callable (name, module) -> rate")

    kinds = (nn.Conv2d, nn.Linear) if linear else (nn.Conv2d,)
    for name, module in list(model.named_modules()):
        if type(module) not in kinds:
            continue
        if include is not None and not include(name, module):
            continue
        rate = drop_rate
        if isinstance(rates, Mapping):
            rate = rates.get(name, drop_rate)
        elif rates is not None:
            chosen = rates(name, module)
            rate = drop_rate if chosen is None else chosen
        rate = settings.validate_drop_rate(rate)
        new = _swap(
            module,
            _SWAPS[type(module)],
            drop_rate=rate,
            selection=selection,
            dims=dims if isinstance(module, nn.Conv2d) else "channel",
            backend=backend,
            reselect_every=reselect_every,
            min_channels=min_channels,
        )
        if name == "":
            return new
        _set_child(model, name, new)
    return model


def revert(model: nn.Module) -> nn.Module:
    """Replace every ``SparseConv2d``/``SparseLinear`` by a plain ``nn.Conv2d``/``nn.Linear``.

    Same Parameter objects, buffers and hooks. Returns ``model`` (or the new module if ``model``
    itself is a sparse layer).
    """
    for name, module in list(model.named_modules()):
        if type(module) is SparseConv2d:
            new = _swap(module, nn.Conv2d)
        elif type(module) is SparseLinear:
            new = _swap(module, nn.Linear)
        else:
            continue
        if name == "":
            return new
        _set_child(model, name, new)
    return model


def sparse_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``(qualified_name, module)`` of ``model`` that is a SparseConv2d or SparseLinear."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (SparseConv2d, SparseLinear))
    ]


def set_drop_rate(
    model: nn.Module, rate: float | None = None, *, factor: float | None = None
) -> int:
    """Set the current ``drop_rate`` of every sparse layer; returns how many layers were set.

    Exactly one of: ``rate`` (the same absolute rate for every layer) or ``factor`` (each layer
    gets ``target_drop_rate * factor``, ``factor`` in [0, 1] — what schedulers use, so per-layer
    rates keep their ratio and a layer whose target is 0 stays dense).
    """
    if (rate is None) == (factor is None):
        raise ValueError("set_drop_rate needs exactly one of rate=... or factor=...")
    if rate is not None:
        rate = settings.validate_drop_rate(rate)
    elif not (0.0 <= float(factor) <= 1.0):
        raise ValueError(f"factor must be in [0, 1], got {factor}; it scales target_drop_rate")
    layers = sparse_modules(model)
    for _, m in layers:
        m.drop_rate = rate if rate is not None else m.target_drop_rate * float(factor)
    return len(layers)

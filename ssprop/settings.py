"""The settings of a sparse layer, validated: what ``convert`` and the layer constructors accept.

``SparseSettings`` is the mixin shared by :class:`~ssprop.SparseConv2d` and
:class:`~ssprop.SparseLinear`; it holds

* ``drop_rate`` (current, in [0, 1), validated on every assignment) and ``target_drop_rate``
  (the configured rate, which schedulers scale);
* ``selection`` (``"topk"``/``"random"``) and ``dims`` (``"channel"``/``"spatial"``/``"all"``);
* ``backend``: ``"auto"`` (Triton kernels for the selection on CUDA when triton imports,
  aten elsewhere), ``"aten"`` or ``"triton"`` (see ``ssprop.kernels``);
* two opt-in variants that change the method (both recorded in the layer's repr and counted by
  ``ssprop.flops``):

  - ``reselect_every=N``: rank the channels on the first sparse backward and then every N-th
    one, reusing the cached kept indices in between (a *stale* selection, akin to
    Selective-Backprop's reuse of old losses). ``N=1`` (default) is the paper's method.
  - ``min_channels=M``: a layer with fewer than ``M`` output channels (features) stays dense
    (e.g. a 64-channel stem with ``M=128``). ``M=0`` (default) makes every layer sparse.

The reselect state is a cache of kept indices (a non-persistent buffer: it follows ``.to()``
and never enters ``state_dict``) and a CPU int64 pair ``[backward passes since the last
ranking, K of the cached selection]`` (0 = nothing cached). Both exist only when
``reselect_every > 1``. A cached selection serves only consecutive sparse backward passes at
the same K: a new K, or a training forward at drop rate 0 (a dense phase of a bar schedule),
makes the next sparse backward rank afresh. Under DDP with ``broadcast_buffers=True`` (the
default) the cache is a buffer like any other, so between rankings every rank reuses rank
0's last selection; at a ranking step each rank ranks its own gradient, as with
``reselect_every=1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SELECTIONS = ("topk", "random")
DIMS = ("channel", "spatial", "all")
BACKENDS = ("auto", "aten", "triton")
CACHE_BUFFER = "_ssprop_idx_cache"


def validate_drop_rate(drop_rate: float) -> float:
    """Return ``drop_rate`` as a float, or raise ValueError if it is outside [0, 1)."""
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)):
        raise ValueError(
            f"drop_rate must be a number in [0, 1), got {drop_rate!r}; pass e.g. drop_rate=0.8"
        )
    rate = float(drop_rate)
    if not (0.0 <= rate < 1.0) or math.isnan(rate):
        raise ValueError(
            f"drop_rate must be in [0, 1), got {rate}; pass e.g. drop_rate=0.8 "
            "(1.0 would drop every gradient)"
        )
    return rate


def validate_selection(selection: str) -> str:
    """Return ``selection`` or raise ValueError naming the valid choices."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    return selection


def validate_dims(dims: str) -> str:
    """Return ``dims`` or raise ValueError naming the valid choices."""
    if dims not in DIMS:
        raise ValueError(f"dims must be one of {', '.join(DIMS)}; got {dims!r}")
    return dims


def validate_backend(backend: str) -> str:
    """Return ``backend``, or raise ValueError for an unknown name or a missing triton."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "triton":
        from ssprop import kernels

        if not kernels.triton_available():
            raise ValueError(
                "backend='triton' needs the triton package (pip install triton); "
                "use backend='auto' to fall back to aten"
            )
    return backend


def _validate_count(name: str, value: int, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({meaning}); got {value!r}")
    return value


def validate_reselect_every(n: int) -> int:
    """Return ``n`` or raise ValueError unless it is an integer >= 1."""
    return _validate_count("reselect_every", n, 1, "1 ranks on every backward")


def validate_min_channels(m: int) -> int:
    """Return ``m`` or raise ValueError unless it is an integer >= 0."""
    return _validate_count("min_channels", m, 0, "layers with fewer output channels stay dense")


def needs_grad(*tensors: Tensor | None) -> bool:
    """True when autograd is on and any of ``tensors`` requires grad."""
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


class SparseSettings:
    """ssProp settings shared by :class:`~ssprop.SparseConv2d` and :class:`~ssprop.SparseLinear`.

    A mixin placed before the torch layer class (see the module docstring). Subclasses define
    ``_sparse_width()`` (their output channels / features).
    """

    _drop_rate: float
    target_drop_rate: float
    selection: str
    dims: str
    backend: str
    min_channels: int
    _reselect_every: int
    _reselect_state: Tensor | None
    _always_dense: bool

    def _sparse_width(self) -> int:  # pragma: no cover - defined by the layers
        raise NotImplementedError

    def _configure_sparse(
        self,
        drop_rate: float,
        selection: str,
        dims: str,
        *,
        backend: str = "auto",
        reselect_every: int = 1,
        min_channels: int = 0,
    ) -> None:
        self.drop_rate = drop_rate
        self.target_drop_rate = self.drop_rate
        self.selection = validate_selection(selection)
        self.dims = validate_dims(dims)
        self.backend = validate_backend(backend)
        self.min_channels = validate_min_channels(min_channels)
        self._always_dense = self._sparse_width() < self.min_channels
        self.reselect_every = reselect_every

    @property
    def drop_rate(self) -> float:
        """Current fraction of output channels (features) dropped in the backward, in [0, 1)."""
        return self._drop_rate

    @drop_rate.setter
    def drop_rate(self, value: float) -> None:
        self._drop_rate = validate_drop_rate(value)

    @property
    def reselect_every(self) -> int:
        """Backward passes that share one ranking (1 = rank every backward, the paper's)."""
        return self._reselect_every

    @reselect_every.setter
    def reselect_every(self, n: int) -> None:
        self._reselect_every = validate_reselect_every(n)
        buffers = self._buffers  # type: ignore[attr-defined]
        if n == 1:
            buffers.pop(CACHE_BUFFER, None)
            self._non_persistent_buffers_set.discard(CACHE_BUFFER)  # type: ignore[attr-defined]
            self._reselect_state = None
            return
        weight = self.weight  # type: ignore[attr-defined]
        cache = torch.zeros(self._sparse_width(), dtype=torch.int64, device=weight.device)
        self.register_buffer(CACHE_BUFFER, cache, persistent=False)  # type: ignore[attr-defined]
        self._reselect_state = torch.zeros(2, dtype=torch.int64)

    def _native_path(self, input: Tensor) -> bool:
        """Drop rate 0, eval mode, a layer under ``min_channels`` or no gradient wanted: the
        torch layer's own computation."""
        native = (
            self._drop_rate == 0.0
            or self._always_dense
            or not self.training  # type: ignore[attr-defined]
            or not needs_grad(input, self.weight, self.bias)  # type: ignore[attr-defined]
        )
        if native and self._reselect_state is not None and self._drop_rate == 0.0:
            # a dense phase (e.g. of a bar schedule): the next sparse backward ranks afresh
            self._reselect_state[1] = 0
        return native

    def _reselect_args(self) -> tuple[int, Tensor, Tensor] | None:
        """``(every, index cache, CPU state)`` for the selection op, or None (rank every time)."""
        if self._reselect_state is None:
            return None
        cache = self._buffers[CACHE_BUFFER]  # type: ignore[attr-defined]
        return self._reselect_every, cache, self._reselect_state

    def _sparse_repr(self, *, show_dims: bool = True) -> str:
        """The ssProp part of ``extra_repr``: every setting that changes what runs."""
        parts = [f"drop_rate={self._drop_rate}", f"selection={self.selection!r}"]
        if show_dims:
            parts.append(f"dims={self.dims!r}")
        parts.append(f"backend={self.backend!r}")
        if self._reselect_every != 1:
            parts.append(f"reselect_every={self._reselect_every}")
        if self.min_channels:
            parts.append(f"min_channels={self.min_channels}")
        return ", ".join(parts)

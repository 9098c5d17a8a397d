"""Backward FLOPs of one layer and of a model, as the ssProp paper counts them (Eq. 6-10).

Every addition, subtraction, multiplication or division counts as one FLOP (paper, "Drop Rate
Lower Bound"); a multiply-accumulate (MAC) is therefore 2 FLOPs.

Convolution (Eq. 6). In the img2col form a convolution is the GEMM
``col_Y (M x C_out) = col_X (M x N) @ col_W (N x C_out)`` with ``M = Bt * H_out * W_out`` and
``N = (C_in / groups) * K_h * K_w`` (C_in per group: a grouped convolution is ``groups``
GEMMs of ``C_out / groups`` columns each, which sums to the same ``M * N * C_out`` MACs).
Its backward is two GEMMs of the same size plus the bias gradient::

    grad_X = grad_Y @ col_W^T     M * N * C_out MACs = 2*M*N*C_out FLOPs
    grad_W = col_X^T @ grad_Y     M * N * C_out MACs = 2*M*N*C_out FLOPs
    grad_b = sum_M grad_Y         M * C_out FLOPs (the paper counts M additions per channel)

    dense = M * (4*N + 1) * C_out        (Eq. 6; the "+1" only when the conv has a bias)

The paper counts grad_X for every convolution, the first one included, although autograd does
not compute it when the network input does not require grad; ``executed_backward_flops`` shows
what autograd really ran. Transposed convolutions are the same GEMMs with the roles swapped:
``M = Bt * prod(input spatial)``, ``N = (C_out / groups) * prod(K)`` and ``C_in`` columns (the
bias term stays ``Bt * prod(output spatial) * C_out``).

Sparse convolution (Eq. 9). With nominal drop rate D only the kept output channels enter both
GEMMs and the bias sum, and ranking the channels costs the summation of |grad_Y| over
``M`` for every channel, ``(M - 1) * C_out`` additions (sorting only compares)::

    sparse(D) = (4*M*N*C_out + bias) * (1 - D) + (M - 1) * C_out        for D > 0
    sparse(0) = dense                                                  (native path)

D is the nominal rate: the implementation keeps ``max(1, floor((1 - D) * C_out))`` channels,
so the executed count can be slightly lower (``executed_backward_flops``).

The opt-in variants of ``ssprop.settings`` change the count, and ``analyze`` reads them from
each layer: with ``reselect_every=N`` the channels are ranked on one backward in N (the others
reuse the cached indices), so the selection term is amortised to ``(M - 1) * C_out / N`` per
iteration (nominal: the first sparse backward after a dense phase ranks afresh, so a run may
rank up to once more per sparse phase); a layer with fewer output channels than its
``min_channels`` runs dense and is counted dense (``LayerFlops.sparse`` is False).

Linear layers are the same with ``M`` = number of rows (the product of all but the last input
dimension), ``N = in_features``, ``C_out = out_features``. They are counted (their backward is
real work) but kept apart: the paper counts convolution, BatchNorm and Dropout only, and
:meth:`ModelFlops.paper` is that count -- the one that reproduces the paper's tables (ResNet-50
with the CIFAR stem at 16x3x224x224: 4,102.22 G, the 1000-class head's 0.13 G left out).
``ModelFlops.by_kind`` separates every kind.

BatchNorm (Eq. 7), on the layer's input ``(Bt, C, *spatial)``: ``12 * numel + 10 * C``.
Dropout (Eq. 8), any ``nn.Dropout*``: ``2 * numel``. Other layers (activations, pooling,
GroupNorm/LayerNorm, additions) are not counted, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PAPER_KINDS = ("conv", "conv_transpose", "batchnorm", "dropout")
"""The layer kinds the paper counts (Eq. 6-8); a classifier head (linear) is not among them."""


# -- pure shape formulas ---------------------------------------------------------------------
def check_shape(name: str, shape: Iterable[int], min_dims: int) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if len(out) < min_dims or any(s < 1 for s in out):
        raise ValueError(f"{name} must have >= {min_dims} positive dims, got {tuple(shape)}")
    return out


def _check_drop(drop_rate: float) -> float:
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    return float(drop_rate)


def _check_every(reselect_every: int) -> int:
    if (
        isinstance(reselect_every, bool)
        or not isinstance(reselect_every, int)
        or reselect_every < 1
    ):
        raise ValueError(f"reselect_every must be an integer >= 1, got {reselect_every!r}")
    return reselect_every


def conv_gemm_terms(
    batch: int,
    out_spatial: Iterable[int],
    in_channels: int,
    out_channels: int,
    kernel_size: Iterable[int],
    groups: int = 1,
) -> tuple[int, int]:
    """``(M, N)`` of a convolution's img2col GEMM: ``M = Bt*prod(out spatial)``,
    ``N = (C_in/groups)*prod(K)``."""
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels ({in_channels}, {out_channels}) not divisible by {groups=}")
    m = batch * math.prod(out_spatial)
    n = (in_channels // groups) * math.prod(kernel_size)
    return m, n


def conv_backward_flops(m: int, n: int, c_out: int, bias: bool) -> int:
    """Eq. 6: ``M * (4N + 1) * C_out`` (the ``+1`` bias term only with a bias)."""
    return 4 * m * n * c_out + (m * c_out if bias else 0)


def sparse_conv_backward_flops(
    m: int, n: int, c_out: int, bias: bool, drop_rate: float, reselect_every: int = 1
) -> float:
    """Eq. 9 right-hand side with the paper's ``(M - 1) * C_out`` selection sum (amortised over
    ``reselect_every`` iterations); dense at 0."""
    d = _check_drop(drop_rate)
    dense = conv_backward_flops(m, n, c_out, bias)
    if d == 0.0:
        return float(dense)
    return dense * (1.0 - d) + (m - 1) * c_out / _check_every(reselect_every)


def linear_backward_flops(rows: int, in_features: int, out_features: int, bias: bool) -> int:
    """Linear analogue of Eq. 6: ``rows * (4 * in + 1) * out`` (``+1`` only with a bias)."""
    return conv_backward_flops(rows, in_features, out_features, bias)


def batchnorm_backward_flops(input_shape: Iterable[int]) -> int:
    """Eq. 7 on the input ``(Bt, C, *spatial)``: ``12 * Bt*H*W*C + 10 * C``."""
    shape = check_shape("batchnorm input", input_shape, 2)
    return 12 * math.prod(shape) + 10 * shape[1]


def dropout_backward_flops(input_shape: Iterable[int]) -> int:
    """Eq. 8 on the input: ``2 * Bt*H*W*C`` (multiply by the mask and the 1/(1-p) scale)."""
    return 2 * math.prod(check_shape("dropout input", input_shape, 1))


# -- per-layer rows --------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerFlops:
    """One counted layer of a model at a given input shape (FLOPs per iteration).

    ``gemm_flops`` (4*M*N*C_out), ``bias_flops`` (M*C_out or 0) and ``selection_flops``
    ((M-1)*C_out, one ranking) are filled for convolutions and linear layers; ``dense_flops``
    is the layer's Eq. 6/7/8 figure. ``sparse`` is True for ssprop sparse layers that run
    sparse (False for one kept dense by ``min_channels``); ``target_drop_rate`` is the rate
    ``convert`` configured and ``reselect_every`` the number of iterations one ranking serves.
    """

    name: str
    kind: str  # "conv", "conv_transpose", "linear", "batchnorm", "dropout"
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dense_flops: int
    gemm_flops: int = 0
    bias_flops: int = 0
    selection_flops: int = 0
    sparse: bool = False
    target_drop_rate: float | None = None
    reselect_every: int = 1

    def flops_at(self, drop_rate: float) -> float:
        """Backward FLOPs of this layer when it runs at ``drop_rate`` (ignored if not sparse);
        the selection sum is amortised over ``reselect_every`` iterations."""
        d = _check_drop(drop_rate)
        if not self.sparse or d == 0.0:
            return float(self.dense_flops)
        gemm = (self.gemm_flops + self.bias_flops) * (1.0 - d)
        return gemm + self.selection_flops / self.reselect_every

    def scheduled_rate(self, factor: float, drop_rate: float | None = None) -> float:
        """The rate a scheduler at ``factor`` gives this layer (``ssprop.schedulers`` rule):
        ``(drop_rate or target_drop_rate) * factor``; 0 for dense or 0-target layers."""
        if not self.sparse or not self.target_drop_rate:
            return 0.0
        return (self.target_drop_rate if drop_rate is None else drop_rate) * factor

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["input_shape"] = list(self.input_shape)
        row["output_shape"] = list(self.output_shape)
        return row


@dataclass
class ModelFlops:
    """Analytic backward FLOPs per iteration of a model at ``input_shape``."""

    input_shape: tuple[int, ...]
    layers: list[LayerFlops] = field(default_factory=list)

    @property
    def dense_flops(self) -> int:
        """Backward FLOPs per iteration with every layer dense (Eq. 6-8 summed)."""
        return sum(row.dense_flops for row in self.layers)

    @property
    def sparse_layers(self) -> list[LayerFlops]:
        return [row for row in self.layers if row.sparse]

    def only(self, kinds: Iterable[str]) -> ModelFlops:
        """The same model counting only the layers of ``kinds``."""
        keep = set(kinds)
        return ModelFlops(self.input_shape, [row for row in self.layers if row.kind in keep])

    def paper(self) -> ModelFlops:
        """The paper's count: convolutions, BatchNorm and Dropout (:data:`PAPER_KINDS`)."""
        return self.only(PAPER_KINDS)

    def by_kind(self) -> dict[str, int]:
        """Dense FLOPs summed per layer kind."""
        out: dict[str, int] = {}
        for row in self.layers:
            out[row.kind] = out.get(row.kind, 0) + row.dense_flops
        return out

    def flops_at(self, drop_rate: float) -> float:
        """Backward FLOPs per iteration when every sparse layer runs at ``drop_rate``.

        Sparse layers whose ``target_drop_rate`` is 0 (kept dense on purpose) stay dense.
        """
        d = _check_drop(drop_rate)
        return sum(
            row.flops_at(d if row.sparse and row.target_drop_rate != 0.0 else 0.0)
            for row in self.layers
        )

    def flops_at_factor(self, factor: float, drop_rate: float | None = None) -> float:
        """FLOPs when a scheduler applies ``factor``: layer rate = (drop_rate or the layer's
        target) * factor, 0-target layers dense (the rule of ``ssprop.schedulers``)."""
        return sum(row.flops_at(row.scheduled_rate(factor, drop_rate)) for row in self.layers)

"""Drop-rate schedulers for sparse back-propagation (paper Fig. 2c/2d).

They follow ``torch.optim.lr_scheduler``'s contract: the constructor applies the rate of
iteration 0, ``step()`` is called once per training iteration (after ``optimizer.step()``)
and applies the rate of the next iteration, ``state_dict()``/``load_state_dict()`` save and
resume, ``last_step`` is the index of the iteration whose rate is applied now::

    ssprop.convert(model, drop_rate=0.8)
    sched = ssprop.schedulers.build("bar", model, 0.8, total_steps=epochs * len(loader),
                                    steps_per_epoch=len(loader), period=2)
    for epoch in range(epochs):
        for x, y in loader:
            loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad()
            sched.step()

The value is a pure function of the iteration index: ``factor(step)`` in [0, 1] is the fraction
of the target applied, ``rate(step) = nominal_rate * factor(step)``. Both are exact and
side-effect free, so schedules can be tested and integrated (``mean_rate``) without a model.

Time grid. ``period_unit`` ("epoch" or "iter") is the unit the schedule moves in: with
"epoch" the rate is constant within an epoch (as in the paper's reference code) and
``period`` counts epochs; with "iter" it may change every iteration and ``period`` counts
iterations. ``warmup`` is always in epochs: the first ``warmup * steps_per_epoch`` iterations
are dense (factor 0) and the schedule starts after them, at its own time 0.

Shapes, with ``u`` the unit index after warm-up, ``U`` the number of units of the run after
warm-up (``ceil`` for a partial last epoch) and ``P`` the period (``period`` or, when it is
None, the whole run ``U``); in a period the position is ``p = u mod P`` (periodic) or
``p = min(u, U - 1)`` (whole run: after the planned end the last value is held):

- ``Constant``: factor 1.
- ``Linear``: factor ``p / (P - 1)`` — the first unit of a ramp is dense, the last one is at
  the target (the paper: "starts at 0% in the first epoch ... increases to the target by the
  final epoch"). A one-unit ramp (``P == 1``) is at the target.
- ``Cosine``: factor ``(1 - cos(pi * p / (P - 1))) / 2``, same end points as ``Linear``.
- ``Bar``: factor 0 (dense) while ``2 * p < P``, else 1 (target). **The first phase is
  dense**: with ``period=2`` epochs, epochs 1, 3, 5, ... (1-based) train normally and epochs
  2, 4, 6, ... at the target drop rate, as in the paper. An odd period gives the dense phase
  the extra unit (``ceil(P / 2)`` dense units). ``period=None`` (the whole run) is Fig. 2c's
  step function: dense first half, sparse second half.
- Periodic ``Linear``/``Cosine`` (Fig. 2d): give a ``period``; the ramp restarts each period.

Which rate each layer gets. With ``drop_rate=None`` every sparse layer gets its own
``target_drop_rate * factor`` (per-layer rates set by ``ssprop.convert(rates=...)`` keep their
ratios) and the nominal rate reported by ``rate()`` is the largest layer target. With an
explicit ``drop_rate``, every sparse layer gets ``drop_rate * factor``, **except** layers whose
``target_drop_rate`` is 0: those were kept dense on purpose and stay dense in both modes.
Sparse layers are found once, at construction, with ``ssprop.convert.sparse_modules``:
convert the model before building its scheduler.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from torch import nn

from ssprop.schedule_names import check_schedule

__all__ = [
    "DropScheduler",
    "Constant",
    "Linear",
    "Cosine",
    "Bar",
    "SCHEDULERS",
    "build",
]

PERIOD_UNITS = ("epoch", "iter")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_rate(name: str, value: Any) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0 or math.isnan(rate):
        raise ValueError(f"{name} must be in [0, 1) (0 = dense), got {value!r}")
    return rate


class DropScheduler:
    """Base class: a pure ``factor(step)`` plus the lr-scheduler style stateful driver.

    Args:
        model: the (converted) model whose sparse layers are driven, or None for pure use.
        drop_rate: the target drop rate for every sparse layer, or None for each layer's own
            ``target_drop_rate`` (see the module docstring).
        total_steps: iterations of the whole run (warm-up included).
        steps_per_epoch: iterations per epoch.
        period: length of one period in ``period_unit`` units, or None for the whole run.
        period_unit: "epoch" or "iter".
        warmup: dense epochs before the schedule starts.
    """

    #: smallest period that makes sense for this shape
    min_period = 1

    def __init__(
        self,
        model: nn.Module | None,
        drop_rate: float | None = None,
        *,
        total_steps: int,
        steps_per_epoch: int,
        period: int | None = None,
        period_unit: str = "epoch",
        warmup: int = 0,
    ) -> None:
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, 1)
        if period_unit not in PERIOD_UNITS:
            raise ValueError(f"period_unit must be 'epoch' or 'iter', got {period_unit!r}")
        self.period_unit = period_unit
        if period is not None:
            _check_int("period", period, self.min_period)
        self.period = period
        self.warmup = _check_int("warmup", warmup, 0)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"warmup ({warmup} epochs = {self.warmup_steps} iterations) must be shorter "
                f"than the run ({total_steps} iterations)"
            )
        self.drop_rate = None if drop_rate is None else _check_rate("drop_rate", drop_rate)
        self._layers: list[nn.Module] = []
        if model is not None:
            from ssprop.convert import sparse_modules

            self._layers = [m for _, m in sparse_modules(model)]
        if self.drop_rate is None:
            if model is None:
                raise ValueError("give a drop_rate when the scheduler has no model")
            targets = [float(m.target_drop_rate) for m in self._layers]
            self.nominal_rate = max(targets, default=0.0)
        else:
            self.nominal_rate = self.drop_rate
        self.last_step = 0
        self._apply(self.factor(0))

    # -- pure part -------------------------------------------------------------------------
    @property
    def warmup_steps(self) -> int:
        """Dense warm-up iterations (``warmup`` epochs)."""
        return self.warmup * self.steps_per_epoch

    @property
    def _unit_steps(self) -> int:
        return self.steps_per_epoch if self.period_unit == "epoch" else 1

    @property
    def run_units(self) -> int:
        """Units (epochs or iterations) of the run after warm-up; a partial epoch counts."""
        return -(-(self.total_steps - self.warmup_steps) // self._unit_steps)

    def position(self, step: int) -> tuple[int, int] | None:
        """``(p, P)``: position in the current period and period length, None in warm-up."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        t = step - self.warmup_steps
        if t < 0:
            return None
        u = t // self._unit_steps
        if self.period is None:
            n = self.run_units
            return min(u, n - 1), n
        return u % self.period, self.period

    def factor(self, step: int) -> float:
        """Fraction of the target drop rate at iteration ``step`` (0-based), in [0, 1]."""
        pos = self.position(step)
        if pos is None:
            return 0.0
        return self._shape(*pos)

    def _shape(self, p: int, period: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def rate(self, step: int) -> float:
        """Nominal drop rate at iteration ``step``: ``nominal_rate * factor(step)``."""
        return self.nominal_rate * self.factor(step)

    def factor_counts(self, total_steps: int | None = None, start: int = 0) -> Counter[float]:
        """How many iterations of ``[start, total_steps)`` run at each factor value."""
        stop = self.total_steps if total_steps is None else total_steps
        _check_int("total_steps", stop, 1)
        _check_int("start", start, 0)
        if start >= stop:
            raise ValueError(f"start ({start}) must be < total_steps ({stop})")
        counts: Counter[float] = Counter()
        step = start
        while step < stop:  # factors are constant within a unit: count a unit at a time
            if step < self.warmup_steps:
                nxt = min(self.warmup_steps, stop)
            else:
                unit = (step - self.warmup_steps) // self._unit_steps
                nxt = min(self.warmup_steps + (unit + 1) * self._unit_steps, stop)
            counts[self.factor(step)] += nxt - step
            step = nxt
        return counts

    def mean_factor(self, total_steps: int | None = None, start: int = 0) -> float:
        """Mean of ``factor`` over iterations ``[start, total_steps)`` (default: the run)."""
        counts = self.factor_counts(total_steps, start)
        return sum(f * n for f, n in counts.items()) / sum(counts.values())

    def mean_rate(self, total_steps: int | None = None, start: int = 0) -> float:
        """Mean nominal drop rate over iterations ``[start, total_steps)`` (default: the run).

        Bar with period 2 epochs at 0.8 over an even number of epochs gives 0.4, the paper's
        "average drop rate ... approximately 40%".
        """
        return self.nominal_rate * self.mean_factor(total_steps, start)

    # -- stateful part (torch.optim.lr_scheduler contract) ---------------------------------
    @property
    def current_rate(self) -> float:
        """Nominal drop rate applied now (iteration ``last_step``)."""
        return self.rate(self.last_step)

    def layer_rate(self, target_drop_rate: float, factor: float) -> float:
        """The rate a layer with ``target_drop_rate`` gets at ``factor`` (see module doc)."""
        if target_drop_rate == 0.0:
            return 0.0
        base = target_drop_rate if self.drop_rate is None else self.drop_rate
        return base * factor

    def _apply(self, factor: float) -> None:
        for layer in self._layers:
            layer.drop_rate = self.layer_rate(float(layer.target_drop_rate), factor)

    def step(self) -> float:
        """Advance one iteration and apply its rate to every sparse layer; returns the rate."""
        self.last_step += 1
        self._apply(self.factor(self.last_step))
        return self.current_rate

    def state_dict(self) -> dict[str, Any]:
        """Everything but the model (as torch's schedulers do)."""
        return {k: v for k, v in self.__dict__.items() if k != "_layers"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a ``state_dict()`` and re-apply the rate of ``last_step`` to the layers."""
        self.__dict__.update(state_dict)
        self._apply(self.factor(self.last_step))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(drop_rate={self.drop_rate}, nominal_rate={self.nominal_rate}, "
            f"total_steps={self.total_steps}, steps_per_epoch={self.steps_per_epoch}, "
            f"period={self.period}, period_unit={self.period_unit!r}, warmup={self.warmup}, "
            f"last_step={self.last_step})"
        )


class Constant(DropScheduler):
    """The target drop rate at every iteration after warm-up (``period`` is ignored)."""

    def _shape(self, p: int, period: int) -> float:
        return 1.0


class Linear(DropScheduler):
    """Linear ramp 0 -> target over the run (or within each ``period``: Fig. 2d)."""

    def _shape(self, p: int, period: int) -> float:
        return 1.0 if period == 1 else p / (period - 1)


class Cosine(DropScheduler):
    """Half-cosine ramp 0 -> target over the run (or within each ``period``)."""

    def _shape(self, p: int, period: int) -> float:
        if period == 1:
            return 1.0
        return (1.0 - math.cos(math.pi * p / (period - 1))) / 2.0


class Bar(DropScheduler):
    """Dense for the first half of each period (``ceil(P/2)`` units), target for the rest."""

    min_period = 2

    def _shape(self, p: int, period: int) -> float:
        return 0.0 if 2 * p < period else 1.0


# The names and their order are ssprop.schedule_names.SCHEDULE_NAMES (torch-free, for help texts).
SCHEDULERS: dict[str, type[DropScheduler]] = {
    "constant": Constant,
    "linear": Linear,
    "cosine": Cosine,
    "bar": Bar,
}


def build(
    name: str,
    model: nn.Module | None,
    drop_rate: float | None,
    *,
    total_steps: int,
    steps_per_epoch: int,
    period: int | None = None,
    period_unit: str = "epoch",
    warmup: int = 0,
) -> DropScheduler:
    """Make the scheduler called ``name`` ("constant", "linear", "cosine", "bar").

    Raises ``ValueError`` with a one-line message for an unknown name or a bad value.
    """
    cls = SCHEDULERS[check_schedule(name)]
    return cls(
        model,
        drop_rate,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        period=period,
        period_unit=period_unit,
        warmup=warmup,
    )

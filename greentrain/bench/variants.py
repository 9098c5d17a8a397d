"""The models a ``bench ssprop`` run compares: one seeded model copied into every variant.

``dense`` (the run's layout, dtype and compile settings), ``dense`` in the other memory layout
(channels_last toggled), one ``ssprop.convert``-ed model per drop rate, and with
``schedule_check`` a model driven by the paper's bar schedule. The sparse and schedule variants
take the config's ``selection``, ``dims``, ``backend``, ``reselect_every`` and ``min_channels``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from greentrain.bench.config import SCHEDULE_DROP_RATE, SCHEDULE_PERIOD_EPOCHS, BenchConfig
from greentrain.errors import ConfigError
from ssprop import schedulers
from ssprop.convert import convert, sparse_modules

Log = Callable[[str], None]


@dataclass
class Variant:
    """One model under test and the timings it collected."""

    name: str
    kind: str  # "dense" | "sparse" | "schedule"
    drop_rate: float | None
    channels_last: bool
    model: Any  # eager nn.Module (parameters, hooks, sparse layers)
    run_model: Any  # what the step calls: ``model`` or ``torch.compile(model)``
    optimizer: Any
    scheduler: Any = None
    step_s: list[float] = field(default_factory=list)  # wall seconds per step
    backward_s: list[float] = field(default_factory=list)  # GPU seconds on CUDA, else wall
    gpu_s: dict[str, list[float]] = field(default_factory=dict)  # GPU seconds per phase
    energy_j: list[float | None] = field(default_factory=list)
    rates: list[float | None] = field(default_factory=list)

    def record_step(
        self, wall: dict[str, float], gpu: dict[str, float] | None, rate: float | None
    ) -> None:
        """Keep one timed step: wall seconds, GPU seconds per phase (CUDA), the drop rate."""
        self.step_s.append(wall["step"])
        self.backward_s.append(gpu["backward"] if gpu else wall["backward"])
        for phase, seconds in (gpu or {}).items():
            self.gpu_s.setdefault(phase, []).append(seconds)
        self.rates.append(rate)


def noop(_: str) -> None:
    """A log function that says nothing."""


def layout_name(channels_last: bool) -> str:
    return "channels_last" if channels_last else "contiguous"


def sync_fn(device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def autocast_fn(cfg: BenchConfig, device) -> Callable[[], Any]:
    if cfg.dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _optimizer(cfg: BenchConfig, model):
    """The same optimizer for every variant: Adam (the paper's) or SGD, fused where possible."""
    params = list(model.parameters())
    kwargs = (
        dict(lr=0.01, momentum=0.9) if cfg.optimizer == "sgd" else dict(lr=2e-4, betas=(0.9, 0.999))
    )
    cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam
    if cfg.fused_optimizer is not False:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):
            if cfg.fused_optimizer:  # asked for explicitly
                raise
    return cls(params, foreach=True, **kwargs)


def optimizer_impl(optimizer) -> str:
    """``fused``, ``foreach`` or ``for-loop``: how the optimizer steps."""
    group = optimizer.param_groups[0]
    return "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"


def _make_variant(
    cfg: BenchConfig, base, device, *, name: str, kind: str, drop_rate, channels_last: bool
) -> Variant:
    model = copy.deepcopy(base)
    scheduler = None
    if kind in ("sparse", "schedule"):
        convert(
            model,
            drop_rate=drop_rate,
            selection=cfg.selection,
            dims=cfg.dims,
            backend=cfg.backend,
            reselect_every=cfg.reselect_every,
            min_channels=cfg.min_channels,
        )
        if not sparse_modules(model):
            raise ConfigError(
                f"ssprop.convert found no layer to make sparse in {cfg.model!r}: "
                "pick a model with Conv2d layers"
            )
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    if kind == "schedule":
        scheduler = schedulers.build(
            "bar",
            model,
            drop_rate,
            total_steps=cfg.warmup + cfg.steps,
            steps_per_epoch=1,
            period=SCHEDULE_PERIOD_EPOCHS,
            period_unit="epoch",
            warmup=0,
        )
    optimizer = _optimizer(cfg, model)
    run_model = model
    if cfg.compile or cfg.cuda_graphs:
        mode = "reduce-overhead" if cfg.cuda_graphs else cfg.compile_mode
        run_model = torch.compile(model, mode=mode, fullgraph=True)
    return Variant(
        name=name,
        kind=kind,
        drop_rate=drop_rate,
        channels_last=channels_last,
        model=model,
        run_model=run_model,
        optimizer=optimizer,
        scheduler=scheduler,
    )


def make_variants(cfg: BenchConfig, base, device) -> list[Variant]:
    """Dense (run's layout), dense (other layout, unless ``cfg.other_layout`` is False), sparse
    per drop rate, optional bar schedule."""
    cl = cfg.channels_last
    variants = [
        _make_variant(
            cfg, base, device, name="dense", kind="dense", drop_rate=None, channels_last=cl
        ),
    ]
    if cfg.other_layout:
        variants.append(
            _make_variant(
                cfg,
                base,
                device,
                name=f"dense[{layout_name(not cl)}]",
                kind="dense",
                drop_rate=None,
                channels_last=not cl,
            )
        )
    for rate in cfg.drops:
        variants.append(
            _make_variant(
                cfg,
                base,
                device,
                name=f"sparse@{rate:g}",
                kind="sparse",
                drop_rate=rate,
                channels_last=cl,
            )
        )
    if cfg.schedule_check:
        variants.append(
            _make_variant(
                cfg,
                base,
                device,
                name=f"bar@{SCHEDULE_DROP_RATE:g}",
                kind="schedule",
                drop_rate=SCHEDULE_DROP_RATE,
                channels_last=cl,
            )
        )
    return variants


def current_rate(variant: Variant) -> float | None:
    if variant.kind == "dense":
        return None
    mods = sparse_modules(variant.model)
    return float(mods[0][1].drop_rate) if mods else None

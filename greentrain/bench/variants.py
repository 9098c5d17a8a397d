"""The models a ``bench ssprop`` run compares: one seeded model copied into every variant.

``dense`` (the run's layout, dtype and compile settings), ``dense`` in the other memory layout
(channels_last toggled), one ``ssprop.convert``-ed model per drop rate, and with
``schedule_check`` a model driven by the paper's bar schedule.
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
from greentrain.jobs.models import build_model
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
    step_s: list[float] = field(default_factory=list)
    backward_s: list[float] = field(default_factory=list)
    energy_j: list[float | None] = field(default_factory=list)
    rates: list[float | None] = field(default_factory=list)


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


def build_base_model(cfg: BenchConfig):
    """The one seeded model every variant is copied from (eager, CPU, fp32)."""
    torch.manual_seed(cfg.seed)
    return build_model(
        cfg.model, num_classes=cfg.num_classes, in_channels=cfg.input_shape[0], stem=cfg.stem
    )


def _optimizer(cfg: BenchConfig, model):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))


def _make_variant(
    cfg: BenchConfig, base, device, *, name: str, kind: str, drop_rate, channels_last: bool
) -> Variant:
    model = copy.deepcopy(base)
    scheduler = None
    if kind in ("sparse", "schedule"):
        convert(model, drop_rate=drop_rate, selection=cfg.selection, dims=cfg.dims)
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
    run_model = torch.compile(model, mode=cfg.compile_mode) if cfg.compile else model
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
    """Dense (run's layout), dense (other layout), sparse per drop rate, optional bar schedule."""
    cl = cfg.channels_last
    variants = [
        _make_variant(
            cfg, base, device, name="dense", kind="dense", drop_rate=None, channels_last=cl
        ),
        _make_variant(
            cfg,
            base,
            device,
            name=f"dense[{layout_name(not cl)}]",
            kind="dense",
            drop_rate=None,
            channels_last=not cl,
        ),
    ]
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

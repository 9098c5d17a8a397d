"""The DDPM job as trained in the ssProp paper (Table 3, Table 5, Fig. 3).

:func:`train_ddpm` runs a ``greentrain train --model ddpm`` job from a
:class:`~greentrain.jobs.config.TrainConfig`: AdamW, per-iteration drop scheduler, per-epoch
logging through ``greentrain.client`` (``epoch``, ``train_loss``, ``val_loss``, ``drop_rate``,
``backward_flops_per_iter``, ``epoch_time_s``), per-epoch checkpoints, and at the end a sample
grid PNG and an FID (``fid`` or ``fid_proxy``; :mod:`greentrain.jobs.ddpm_eval`). The diffusion
itself is :mod:`greentrain.jobs.diffusion`, the UNet :mod:`greentrain.jobs.unet`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import ssprop
from greentrain import client as default_client
from greentrain.errors import ConfigError
from greentrain.jobs import checkpoint as ckpt
from greentrain.jobs.data import load_for
from greentrain.jobs.ddpm_eval import evaluate_loss, evaluate_samples, to_unit
from greentrain.jobs.diffusion import DDPM
from greentrain.jobs.distributed import pick_device
from greentrain.jobs.loop import (
    FlopsAt,
    build_drop_scheduler,
    compiled,
    deterministic,
    epoch_flops_plan,
    seed_everything,
    train_steps,
)
from greentrain.jobs.progress import EpochProgress
from greentrain.jobs.recipes import resolve
from greentrain.jobs.unet import build_unet, default_unet_shape


@dataclass
class DDPMResult:
    """What :func:`train_ddpm` returns (everything it also logged)."""

    out_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch
    samples_png: Path | None = None
    fid: dict[str, Any] | None = None  # {"metric", "value", "extractor", "num_real", ...}
    model: nn.Module | None = None
    epochs_done: int = 0


def _whole_period(cfg: Any) -> Any:
    """``cfg`` with ``period`` as an int (the schedulers take whole epochs/iterations)."""
    if cfg.period is None or isinstance(cfg.period, int):
        return cfg
    if float(cfg.period) != int(cfg.period):
        raise ConfigError(
            f"--period must be a whole number of {cfg.period_unit}s, got {cfg.period}"
        )
    return dataclasses.replace(cfg, period=int(cfg.period))


def default_out_dir(cfg: Any) -> Path:
    """Where samples go when ``--out`` is not given: ``reports/ddpm/<dataset>-drop<D>-seed<S>``."""
    return Path("reports") / "ddpm" / f"{cfg.dataset}-drop{cfg.drop:g}-seed{cfg.seed}"


def build_ddpm_model(cfg: Any, input_shape: tuple[int, int, int]) -> nn.Module:
    """The UNet for ``input_shape`` (C, H, W): ``cfg.base_channels``/``cfg.channel_mults`` or,
    when they are None, the paper's shape for that image size; converted to ssProp layers
    (every ``nn.Conv2d``; ``nn.Linear`` too with ``cfg.sparse_linear``) when ``cfg.drop > 0``."""
    channels, height, width = input_shape
    if height != width:
        raise ConfigError(f"the DDPM job needs square images, got {height}x{width}")
    base, mults = default_unet_shape(height)
    if getattr(cfg, "base_channels", None) is not None:
        base = cfg.base_channels
    if getattr(cfg, "channel_mults", None) is not None:
        mults = tuple(cfg.channel_mults)
    model = build_unet(channels, base, mults, image_size=height)
    if cfg.drop > 0:
        ssprop.convert(
            model,
            cfg.drop,
            selection=cfg.selection,
            dims=cfg.dims,
            linear=cfg.sparse_linear,
            backend=getattr(cfg, "backend", "auto"),
            reselect_every=getattr(cfg, "reselect_every", 1),
            min_channels=getattr(cfg, "min_channels", 0),
        )
    return model


def train_ddpm(
    cfg: Any,
    *,
    client: Any = None,
    data: Any = None,
    proxy_steps: int = 500,
    power_w: Callable[[], float | None] | None = None,
    forecast: Callable[[], str | None] | None = None,
    stop_after_epoch: int | None = None,
) -> DDPMResult:
    """Train the paper's DDPM on ``cfg.dataset``, then sample and compute the FID.

    ``cfg``: a :class:`greentrain.jobs.config.TrainConfig` with ``model="ddpm"`` (the paper's
    defaults are filled in by ``resolve``). ``client``: an object with ``config``/``log``/
    ``window`` like :mod:`greentrain.client` (the default). ``data``: a ``DataBundle`` (default:
    ``load_for(cfg)``). ``proxy_steps``: training steps of the FID proxy classifier,
    used when no Inception weights are on disk. ``stop_after_epoch`` (1-based) ends the session
    after that epoch, before evaluation, as if interrupted (for ``--resume`` tests).

    Writes to ``cfg.out`` (or :func:`default_out_dir`): ``samples.png`` (``cfg.num_samples``
    images, the paper's Fig. 3), ``fid.json``, ``fid_proxy_<dataset>.pt`` and, only when
    ``cfg.out`` is set, the per-epoch checkpoint ``last.pt``.
    """
    if client is None:
        client = default_client
    if cfg.model != "ddpm":
        raise ConfigError(f"train_ddpm needs --model ddpm, got {cfg.model!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the DDPM job runs in one process; launch it without torchrun")
    cfg = resolve(cfg)
    if stop_after_epoch is None:
        stop_after_epoch = cfg.stop_after_epoch
    device = pick_device(cfg.device)
    out_dir = Path(cfg.out) if cfg.out else default_out_dir(cfg)
    result = DDPMResult(out_dir=out_dir)
    with deterministic(cfg.deterministic):
        seed_everything(cfg.seed)
        if data is None:
            data = load_for(cfg)
        model = build_ddpm_model(cfg, data.input_shape)
        result.model = model
        flops_at = FlopsAt(model, (cfg.batch_size, *data.input_shape))
        model.to(device)
        diffusion = DDPM(cfg.timesteps).to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
        generator = torch.Generator()
        loader = torch.utils.data.DataLoader(
            data.train,
            batch_size=cfg.batch_size,
            sampler=torch.utils.data.RandomSampler(data.train, generator=generator),
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
        )
        steps_per_epoch = len(loader)
        if cfg.max_steps_per_epoch is not None:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
        train_model = compiled(model, cfg, device)
        scheduler = build_drop_scheduler(_whole_period(cfg), model, cfg.epochs, steps_per_epoch)

        start_epoch = 0
        if cfg.resume:
            start_epoch, extra = ckpt.resume(
                out_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                map_location=device,
            )  # fmt: skip
            result.history = list(extra.get("history", []))
            result.epochs_done = start_epoch
        plan = epoch_flops_plan(scheduler, flops_at, cfg.epochs, steps_per_epoch)
        client.config(
            **cfg.record(), steps_per_epoch=steps_per_epoch,
            **({"backward_flops_per_epoch": plan} if plan else {}),
        )  # fmt: skip

        with EpochProgress(cfg.progress, power_w=power_w, forecast=forecast) as bar:
            for e in range(start_epoch, cfg.epochs):
                epoch = e + 1
                with client.window("epoch", index=e):
                    t0 = time.perf_counter()
                    generator.manual_seed(cfg.seed * 1_000_003 + e)
                    model.train()
                    bar.start_epoch(e, cfg.epochs, steps_per_epoch)

                    def loss_fn(batch: Any) -> torch.Tensor:
                        x0 = to_unit(batch[0].to(device), data.mean, data.std) * 2 - 1
                        return diffusion.loss(train_model, x0)

                    done = train_steps(
                        loader,
                        steps_per_epoch,
                        loss_fn,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        flops_at=flops_at,
                        bar=bar,
                    )
                    train_loss = done.mean(done.loss_sum)
                    if not math.isfinite(train_loss):
                        raise FloatingPointError(f"DDPM loss is {train_loss} in epoch {epoch}")
                    metrics: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
                    if data.val is not None:
                        metrics["val_loss"] = evaluate_loss(
                            model,
                            diffusion,
                            data.val,
                            data.mean,
                            data.std,
                            batch_size=cfg.eval_batch_size,
                            limit_batches=cfg.limit_eval_batches,
                            seed=cfg.seed,
                            device=device,
                        )
                    metrics["drop_rate"] = round(done.mean(done.rate_sum), 12)
                    metrics["backward_flops_per_iter"] = done.mean(done.flops_sum)
                    metrics["epoch_time_s"] = time.perf_counter() - t0
                    client.log(step=epoch, **metrics)
                    bar.end_epoch(loss=train_loss, acc=None, drop_rate=metrics["drop_rate"])
                result.history.append(metrics)
                result.epochs_done = epoch
                if cfg.out:
                    ckpt.save_checkpoint(
                        out_dir,
                        model=model,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        epoch=e,
                        extra={"history": result.history},
                    )
                if stop_after_epoch is not None and epoch >= stop_after_epoch:
                    return result

        with client.window("eval", index=cfg.epochs):
            evaluate_samples(
                model,
                diffusion,
                data,
                cfg,
                out_dir,
                result,
                proxy_steps=proxy_steps,
                device=device,
            )
        if result.fid is not None:
            client.log(
                step=cfg.epochs,
                **{result.fid["metric"]: result.fid["value"]},
                fid_extractor=result.fid["extractor"],
                fid_num_samples=result.fid["num_fake"],
                fid_sample_steps=result.fid["sample_steps"],
            )
    return result

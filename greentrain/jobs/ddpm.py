"""DDPM (Ho et al. 2020) as trained in the ssProp paper (Table 3, Table 5, Fig. 3).

Core, independent of the rest of greentrain:

- :class:`DDPM`: the linear beta schedule (1e-4 -> 0.02 over ``timesteps``), the forward
  noising ``q(x_t | x_0)``, the ε-prediction L2 loss and the ancestral sampler. Sampling with
  fewer steps than ``timesteps`` uses a strided subsequence of the timesteps with the
  respaced betas ``1 - abar_t / abar_prev`` (Nichol & Dhariwal 2021); with all steps it is
  exactly Ho et al.'s sampler with the posterior variance. Predicted ``x_0`` is clipped to
  [-1, 1] at every step (as the paper's code does).
- The UNet lives in :mod:`greentrain.jobs.unet`.

Glue: :func:`train_ddpm` runs a ``greentrain train --model ddpm`` job from a
:class:`~greentrain.jobs.config.TrainConfig`: AdamW, per-iteration drop scheduler, per-epoch
logging through ``greentrain.client`` (``epoch``, ``train_loss``, ``val_loss``, ``drop_rate``,
``backward_flops_per_iter``, ``epoch_time_s``), per-epoch checkpoints, and at the end a sample
grid PNG and an FID (``fid`` or ``fid_proxy``, see :mod:`greentrain.jobs.fid`).

Images are scaled to [-1, 1] for the diffusion (``x01 * 2 - 1``), from the [0, 1] pixels
recovered from the dataset's normalisation (``x * std + mean``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from greentrain.errors import ConfigError

BETA_START = 1e-4
BETA_END = 0.02


# -- diffusion core ----------------------------------------------------------------------------
def strided_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps evenly spread over ``[0, timesteps - 1]``, increasing, both ends in."""
    if not 1 <= steps <= timesteps:
        raise ConfigError(f"--sample-steps must be in [1, {timesteps}], got {steps}")
    if steps == 1:
        return [timesteps - 1]
    return sorted({round(i * (timesteps - 1) / (steps - 1)) for i in range(steps)})


class DDPM(nn.Module):
    """Gaussian diffusion with a linear beta schedule; the schedule tensors are buffers.

    ``betas[t]`` for t = 0..T-1 goes linearly from ``beta_start`` to ``beta_end``;
    ``alphas_cumprod[t] = prod_{s<=t} (1 - betas[s])``.
    """

    def __init__(
        self, timesteps: int = 1000, beta_start: float = BETA_START, beta_end: float = BETA_END
    ) -> None:
        super().__init__()
        if timesteps < 1:
            raise ConfigError(f"--timesteps must be >= 1, got {timesteps}")
        self.timesteps = int(timesteps)
        betas = torch.linspace(beta_start, beta_end, self.timesteps, dtype=torch.float64)
        abar = torch.cumprod(1.0 - betas, dim=0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", abar.float(), persistent=False)
        self.register_buffer("sqrt_abar", abar.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_one_minus_abar", (1.0 - abar).sqrt().float(), persistent=False)
        self._abar64 = abar  # float64 copy for the sampler's coefficients

    @staticmethod
    def _bcast(v: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return v[t].reshape(-1, *([1] * (ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``."""
        return (
            self._bcast(self.sqrt_abar, t, x0.dim()) * x0
            + self._bcast(self.sqrt_one_minus_abar, t, x0.dim()) * noise
        )

    def loss(
        self,
        model: nn.Module,
        x0: torch.Tensor,
        *,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """ε-prediction L2 loss ``mean |eps - model(x_t, t)|^2`` with t ~ U{0..T-1}."""
        if t is None:
            t = torch.randint(
                0, self.timesteps, (x0.shape[0],), device=x0.device, generator=generator
            )
        if noise is None:
            noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        pred = model(self.q_sample(x0, t, noise), t)
        return F.mse_loss(pred, noise)

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        shape: tuple[int, ...],
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Ancestral sampling of ``shape`` images in [-1, 1] with ``steps`` model calls.

        ``steps=None`` uses every timestep. ``generator`` (on ``device``) makes it reproducible.
        """
        ts = strided_timesteps(self.timesteps, steps or self.timesteps)
        abar = self._abar64
        x = torch.randn(shape, device=device, generator=generator)
        for i in range(len(ts) - 1, -1, -1):
            t = ts[i]
            a_t = float(abar[t])
            a_prev = float(abar[ts[i - 1]]) if i > 0 else 1.0
            beta = 1.0 - a_t / a_prev
            t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
            eps = model(x, t_batch)
            x0 = ((x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)).clamp(-1.0, 1.0)
            coef_x0 = math.sqrt(a_prev) * beta / (1.0 - a_t)
            coef_xt = math.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a_t)
            x = coef_x0 * x0 + coef_xt * x
            if i > 0:
                var = beta * (1.0 - a_prev) / (1.0 - a_t)
                z = torch.randn(shape, device=device, generator=generator)
                x = x + math.sqrt(var) * z
        return x.clamp(-1.0, 1.0)


# -- data helpers ------------------------------------------------------------------------------
def to_unit(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Undo the dataset normalisation: ``x * std + mean`` clamped to [0, 1] (per channel)."""
    if not mean:
        return x.clamp(0, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return (x * s + m).clamp(0, 1)


def collect(
    dataset: Any, limit: int | None, *, seed: int = 0, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``limit`` (images, labels) of ``dataset`` as tensors, a fixed random subset."""
    from torch.utils.data import DataLoader, Subset

    n = len(dataset)
    if limit is not None and limit < n:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit]
        dataset = Subset(dataset, idx.tolist())
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(batch[0])
        ys.append(torch.as_tensor(batch[1]))
    return torch.cat(xs), torch.cat(ys)


# -- the job -----------------------------------------------------------------------------------
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
    from greentrain.jobs.unet import build_unet, default_unet_shape

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
        import ssprop

        ssprop.convert(
            model, cfg.drop, selection=cfg.selection, dims=cfg.dims, linear=cfg.sparse_linear
        )
    return model


def train_ddpm(
    cfg: Any,
    *,
    client: Any = None,
    data: Any = None,
    proxy_steps: int = 500,
    power_w: Callable[[], float | None] | None = None,
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
    from greentrain.jobs import checkpoint as ckpt
    from greentrain.jobs.classify import (
        FlopsAt,
        _deterministic,
        build_drop_scheduler,
        seed_everything,
        train_steps,
    )
    from greentrain.jobs.config import resolve
    from greentrain.jobs.data import load_for
    from greentrain.jobs.distributed import pick_device
    from greentrain.jobs.progress import EpochProgress

    if client is None:
        from greentrain import client
    if cfg.model != "ddpm":
        raise ConfigError(f"train_ddpm needs --model ddpm, got {cfg.model!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the DDPM job runs in one process; launch it without torchrun")
    cfg = resolve(cfg)
    device = pick_device(cfg.device)
    out_dir = Path(cfg.out) if cfg.out else default_out_dir(cfg)
    result = DDPMResult(out_dir=out_dir)
    with _deterministic(cfg.deterministic):
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
        scheduler = build_drop_scheduler(_whole_period(cfg), model, steps_per_epoch)

        start_epoch = 0
        if cfg.resume:
            path = out_dir / ckpt.LAST
            if path.is_file():
                state = ckpt.load_checkpoint(path, map_location=device)
                start_epoch = ckpt.restore(
                    state, model=model, optimizer=optimizer, scheduler=scheduler
                )
                result.history = list(state["extra"].get("history", []))
                result.epochs_done = start_epoch
        client.config(**cfg.record(), steps_per_epoch=steps_per_epoch)

        with EpochProgress(cfg.progress, power_w=power_w) as bar:
            for e in range(start_epoch, cfg.epochs):
                epoch = e + 1
                with client.window("epoch", index=e):
                    t0 = time.perf_counter()
                    generator.manual_seed(cfg.seed * 1_000_003 + e)
                    model.train()
                    bar.start_epoch(e, cfg.epochs, steps_per_epoch)

                    def loss_fn(batch: Any) -> torch.Tensor:
                        x0 = to_unit(batch[0].to(device), data.mean, data.std) * 2 - 1
                        return diffusion.loss(model, x0)

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


def evaluate_samples(
    model: nn.Module,
    diffusion: DDPM,
    data: Any,
    cfg: Any,
    out_dir: Path,
    result: DDPMResult,
    *,
    proxy_steps: int,
    device: torch.device,
) -> None:
    """Write the sample grid (``samples.png``) and, with ``cfg.fid_samples >= 2``, the FID
    (``fid.json``); fill ``result.samples_png``/``result.fid``."""
    from torchvision.utils import save_image

    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    channels, height, width = data.input_shape
    steps = cfg.sample_steps or cfg.timesteps
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    def draw(n: int) -> torch.Tensor:
        return diffusion.sample(
            model, (n, channels, height, width), steps=steps, generator=gen, device=device
        )

    grid = draw(cfg.num_samples)
    result.samples_png = out_dir / "samples.png"
    save_image((grid + 1) / 2, result.samples_png, nrow=max(1, math.isqrt(cfg.num_samples)))
    if cfg.fid_samples < 2:
        return
    fakes = []
    for i in range(0, cfg.fid_samples, cfg.eval_batch_size):
        fakes.append(draw(min(cfg.eval_batch_size, cfg.fid_samples - i)).cpu())
    fake01 = (torch.cat(fakes) + 1) / 2
    result.fid = compute_fid(
        fake01, data, cfg=cfg, out_dir=out_dir, proxy_steps=proxy_steps, device=device
    )
    result.fid["sample_steps"] = steps
    (out_dir / "fid.json").write_text(json.dumps(result.fid, indent=2))


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    diffusion: DDPM,
    dataset: Any,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    batch_size: int,
    limit_batches: int | None,
    seed: int,
    device: torch.device,
) -> float:
    """Mean ε-prediction loss over ``dataset`` with fixed t and noise (seeded): comparable
    between epochs and runs."""
    from torch.utils.data import DataLoader

    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed + 7)
    total, count = 0.0, 0
    for i, batch in enumerate(DataLoader(dataset, batch_size=batch_size, shuffle=False)):
        if limit_batches is not None and i >= limit_batches:
            break
        x0 = to_unit(batch[0].to(device), mean, std) * 2 - 1
        loss = diffusion.loss(model, x0, generator=gen)
        total += float(loss) * len(x0)
        count += len(x0)
    model.train()
    return total / max(count, 1)


def compute_fid(
    fake01: torch.Tensor,
    bundle: Any,
    *,
    cfg: Any,
    out_dir: Path,
    proxy_steps: int,
    device: torch.device,
) -> dict[str, Any]:
    """FID of ``fake01`` (images in [0, 1]) against the test split: Inception when its weights
    are on disk, else the proxy classifier (see :mod:`greentrain.jobs.fid`)."""
    from greentrain.jobs import fid as fidmod

    real, _ = collect(bundle.test, len(fake01), seed=cfg.seed)
    real01 = to_unit(real, bundle.mean, bundle.std)
    weights = fidmod.inception_weights_path(cfg.fid_weights)
    if weights is not None:
        extractor = fidmod.inception_extractor(weights, device=device)
    else:
        train_x, train_y = collect(bundle.train, 20_000, seed=cfg.seed)
        test_x, test_y = collect(bundle.test, 2_000, seed=cfg.seed + 1)
        extractor = fidmod.proxy_extractor(
            out_dir / f"fid_proxy_{cfg.dataset}.pt",
            to_unit(train_x, bundle.mean, bundle.std),
            train_y,
            dataset=cfg.dataset,
            num_classes=bundle.num_classes,
            multilabel=bundle.task == "multilabel",
            steps=proxy_steps,
            seed=0,
            test_images=to_unit(test_x, bundle.mean, bundle.std),
            test_labels=test_y,
            device=device,
        )
    value = fidmod.fid_between(real01, fake01, extractor)
    return {
        "metric": extractor.metric,
        "value": value,
        "extractor": extractor.detail,
        "num_real": len(real01),
        "num_fake": len(fake01),
    }

"""What one benchmark step computes, for each kind of model the paper trains.

* ResNets (``resnet18``/``resnet26``/``resnet50``): cross-entropy of random labels in
  ``[0, num_classes)``, as in classification.
* ``ddpm``: the paper's DDPM UNet (:func:`greentrain.jobs.unet.build_unet`, the paper's shape for
  the image size unless ``unet_base`` is given) with its training loss: the mean squared error
  between the predicted and the true noise at random timesteps. The inputs are random images
  (the UNet's work does not depend on their content).

The batch is made once from ``cfg.seed`` and reused by every step of every variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from greentrain.bench.config import BenchConfig
from greentrain.jobs.models import build_model
from greentrain.jobs.unet import build_unet, default_unet_shape

DIFFUSION_MODELS = ("ddpm",)
TIMESTEPS = 1000  # the paper's CelebA setting; the UNet's cost does not depend on it


@dataclass
class Batch:
    """One fixed batch: images in both memory layouts, targets, timesteps (diffusion only)."""

    x: torch.Tensor
    x_cl: torch.Tensor
    target: torch.Tensor  # labels, or the noise to predict
    t: torch.Tensor | None = None

    def images(self, channels_last: bool) -> torch.Tensor:
        return self.x_cl if channels_last else self.x


def is_diffusion(cfg: BenchConfig) -> bool:
    return cfg.model in DIFFUSION_MODELS


def build(cfg: BenchConfig) -> nn.Module:
    """The one seeded model every variant is copied from (eager, CPU, fp32)."""
    torch.manual_seed(cfg.seed)
    channels, height, _ = cfg.input_shape
    if is_diffusion(cfg):
        base, mults = default_unet_shape(height)
        return build_unet(channels, cfg.unet_base or base, mults, image_size=height)
    return build_model(cfg.model, num_classes=cfg.num_classes, in_channels=channels, stem=cfg.stem)


def make_batch(cfg: BenchConfig, device: torch.device) -> Batch:
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.batch_size, *cfg.input_shape, generator=gen)
    if is_diffusion(cfg):
        target = torch.randn(x.shape, generator=gen)
        t = torch.randint(0, TIMESTEPS, (cfg.batch_size,), generator=gen).to(device)
    else:
        target = torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=gen)
        t = None
    x = x.to(device)
    return Batch(x, x.contiguous(memory_format=torch.channels_last), target.to(device), t)


def loss(model: nn.Module, batch: Batch, channels_last: bool) -> torch.Tensor:
    """The step's loss (in float32, whatever autocast computed the forward in)."""
    x = batch.images(channels_last)
    if batch.t is not None:
        return F.mse_loss(model(x, batch.t).float(), batch.target)
    return F.cross_entropy(model(x).float(), batch.target)

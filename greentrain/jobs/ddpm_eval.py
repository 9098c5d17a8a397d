"""Evaluation of the DDPM job: the sample grid (the paper's Fig. 3), a fixed-noise validation
loss comparable across epochs and runs, and the FID against the test split (Inception when its
weights are on disk, else the proxy of :mod:`greentrain.jobs.fid`).

Images are scaled to [-1, 1] for the diffusion (``x01 * 2 - 1``), from the [0, 1] pixels
recovered from the dataset's normalisation (``x * std + mean``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.utils import save_image

from greentrain.jobs import fid as fidmod
from greentrain.jobs.diffusion import DDPM


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
    n = len(dataset)
    if limit is not None and limit < n:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit]
        dataset = Subset(dataset, idx.tolist())
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(batch[0])
        ys.append(torch.as_tensor(batch[1]))
    return torch.cat(xs), torch.cat(ys)


def evaluate_samples(
    model: nn.Module,
    diffusion: DDPM,
    data: Any,
    cfg: Any,
    out_dir: Path,
    result: Any,
    *,
    proxy_steps: int,
    device: torch.device,
) -> None:
    """Write the sample grid (``samples.png``) and, with ``cfg.fid_samples >= 2``, the FID
    (``fid.json``); fill ``result.samples_png``/``result.fid``."""
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

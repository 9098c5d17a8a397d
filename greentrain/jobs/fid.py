"""Fréchet distances between image sets: the real Inception FID or a labelled proxy.

Two feature spaces, recorded under two metric names so they are never confused:

- ``fid``: the standard FID (Heusel et al. 2017) in the 2048-d pool features of the TF-ported
  InceptionV3 of ``torch-fidelity`` (the network torchmetrics uses too). Used **only** when its
  weights file is on disk: ``--fid-weights PATH`` or torch-fidelity's cache file
  ``<torch.hub.get_dir()>/checkpoints/weights-inception-2015-12-05-6726825d.pth``. Nothing is
  ever downloaded.
- ``fid_proxy``: the same Fréchet distance in the penultimate-layer features (128-d, global
  average pool) of a small CNN classifier trained here on the same dataset's training split
  (cached as ``fid_proxy_<dataset>.pt`` in the output directory). Its values are comparable
  only between runs that use the same classifier file; never with published FIDs.

Images enter every function as float tensors in [0, 1] of shape (N, C, H, W).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from greentrain.errors import ConfigError

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
PROXY_FEATURE_DIM = 128


# -- Fréchet distance ------------------------------------------------------------------------
def feature_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix (float64, unbiased) of features of shape (N, D)."""
    x = np.asarray(
        features.detach().cpu().double() if torch.is_tensor(features) else features,
        dtype=np.float64,
    )
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features of shape (N>=2, D), got {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``, with the trace
    term computed as ``sum sqrt(eig(s1^(1/2) sigma2 s1^(1/2)))`` (a symmetric PSD matrix, so
    the eigenvalues are real; tiny negative round-off is clipped to 0). Float64 throughout.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched shapes: {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


# -- feature extractors ------------------------------------------------------------------------
@dataclass
class FeatureExtractor:
    """Maps images in [0, 1] (N, C, H, W) to features (N, D); ``metric`` names the result."""

    metric: str  # "fid" or "fid_proxy"
    detail: str  # which network, which weights: recorded with the value
    fn: Callable[[torch.Tensor], torch.Tensor]
    info: dict = field(default_factory=dict)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        out = [
            self.fn(images[i : i + batch_size]).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(out)


def inception_weights_path(explicit: str | None = None) -> str | None:
    """The Inception weights to use, or None: ``explicit`` (must exist) or the library cache."""
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError(f"--fid-weights {explicit} does not exist; give the .pth file path")
        return explicit
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    return str(cached) if cached.is_file() else None


def inception_extractor(weights_path: str, device: torch.device | str = "cpu") -> FeatureExtractor:
    """torch-fidelity's InceptionV3 (2048-d pool3 features) from a local weights file."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise ConfigError("Inception FID needs torch-fidelity: pip install torch-fidelity") from exc
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=weights_path
    ).to(device)

    def fn(images: torch.Tensor) -> torch.Tensor:
        x = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return net(x.to(device))[0]

    return FeatureExtractor("fid", f"InceptionV3 pool3 2048-d (torch-fidelity, {weights_path})", fn)


class ProxyClassifier(nn.Module):
    """A small CNN: 3 conv layers (32/64/128 ch, ReLU) -> global avg pool (128-d) -> linear.

    ``features(x)`` returns the 128-d pooled vector (the FID feature space); ``forward`` the
    logits. Inputs are images in [0, 1].
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, PROXY_FEATURE_DIM, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(PROXY_FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _proxy_loss(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y)


@torch.no_grad()
def _proxy_accuracy(
    model: ProxyClassifier, x: torch.Tensor, y: torch.Tensor, multilabel: bool
) -> float:
    model.eval()
    logits = torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])
    if multilabel:
        return float(((logits > 0).long() == y.long()).float().mean())
    return float((logits.argmax(1) == y).float().mean())


def train_proxy_classifier(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    num_classes: int,
    multilabel: bool = False,
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    test_images: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[ProxyClassifier, dict]:
    """Train :class:`ProxyClassifier` with Adam for ``steps`` batches; return it and its info.

    ``info`` holds the step count and the test accuracy (fraction 0..1, or None without test
    data), so a reader can judge how meaningful the feature space is.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProxyClassifier(train_images.shape[1], num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(train_images)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        x, y = train_images[idx].to(device), train_labels[idx].to(device)
        loss = _proxy_loss(model(x), y, multilabel)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    acc = None
    if test_images is not None and test_labels is not None and len(test_images):
        acc = _proxy_accuracy(model, test_images.to(device), test_labels.to(device), multilabel)
    info = {"steps": steps, "test_acc": acc, "num_classes": num_classes, "multilabel": multilabel}
    return model, info


def proxy_extractor(
    cache_path: str | os.PathLike,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    dataset: str,
    num_classes: int,
    multilabel: bool = False,
    steps: int = 500,
    seed: int = 0,
    test_images: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> FeatureExtractor:
    """The proxy feature extractor: loads ``cache_path`` if it matches, else trains and saves it.

    The cache is reused only when dataset, image shape, class count and step count match.
    """
    cache_path = Path(cache_path)
    shape = [int(s) for s in train_images.shape[1:]]
    key = {
        "dataset": dataset,
        "shape": shape,
        "num_classes": num_classes,
        "steps": steps,
        "multilabel": multilabel,
    }
    model = ProxyClassifier(shape[0], num_classes)
    info = None
    if cache_path.is_file():
        blob = torch.load(cache_path, map_location="cpu", weights_only=True)
        if blob.get("key") == key:
            model.load_state_dict(blob["state_dict"])
            info = dict(blob["info"])
    if info is None:
        model, info = train_proxy_classifier(
            train_images,
            train_labels,
            num_classes=num_classes,
            multilabel=multilabel,
            steps=steps,
            seed=seed,
            test_images=test_images,
            test_labels=test_labels,
            device="cpu" if device is None else device,
        )
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        torch.save({"key": key, "info": info, "state_dict": state}, cache_path)
    model = model.to(device).eval()
    acc = info.get("test_acc")
    acc_txt = "n/a" if acc is None else f"{acc:.3f}"
    detail = (
        f"proxy: 128-d pooled features of a 3-conv CNN classifier trained {info['steps']} steps "
        f"on {dataset} train split (test acc {acc_txt}; {cache_path.name}); not Inception FID"
    )

    def fn(images: torch.Tensor) -> torch.Tensor:
        return model.features(images.to(device))

    return FeatureExtractor("fid_proxy", detail, fn, info={**info, "path": str(cache_path)})


def fid_between(
    real: torch.Tensor, fake: torch.Tensor, extractor: FeatureExtractor, batch_size: int = 256
) -> float:
    """Fréchet distance between two image sets in [0, 1] in ``extractor``'s feature space."""
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("FID needs at least 2 real and 2 generated images")
    f_real = extractor.features(real, batch_size)
    f_fake = extractor.features(fake, batch_size)
    value = frechet_distance(*feature_stats(f_real), *feature_stats(f_fake))
    if not math.isfinite(value):
        raise ValueError("FID is not finite")
    return value

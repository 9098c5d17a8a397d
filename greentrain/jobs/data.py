"""Datasets of the built-in jobs with the paper's splits and per-dataset normalisation.

``load_dataset(name, ...)`` returns a :class:`DataBundle` (train / val / test datasets plus the
shape facts a model needs). No augmentation anywhere (the paper uses none).

Splits (paper Table 1): MNIST and Fashion-MNIST 48,000/12,000/10,000 and CIFAR-10/100
40,000/10,000/10,000 -- the official training set is split 80/20 into train/val with a fixed
generator (seed ``SPLIT_SEED``, the same for every training seed, so runs are comparable) and the
official test set is the test split. CelebA uses its official partition file
(162,770/19,867/19,962). ImageNet is an ImageFolder root with ``train/`` and ``val/``; the
official validation set is the test split (the paper's Table 4 numbers) and there is no val split.
``digits`` is scikit-learn's 1,797 real 8x8 handwritten digits (offline): 20% test, 15% of the
rest val, the same fixed generator.

Normalisation constants (per channel, on [0, 1] pixels): MNIST mean 0.1307 std 0.3081 and
Fashion-MNIST 0.2860/0.3530 (train-set statistics, the values used across the literature);
CIFAR-10 (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435, 0.2616) and CIFAR-100
(0.5071, 0.4865, 0.4409)/(0.2673, 0.2564, 0.2762) (train-set statistics); CelebA aligned
(0.5063, 0.4258, 0.3832)/(0.3107, 0.2904, 0.2897) (commonly used train-set statistics);
ImageNet (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225) (torchvision's). ``digits`` is normalised by
the mean/std of its own train split, computed at load time.

``synthetic-cifar10`` has CIFAR-10's shapes and split sizes (40,000/10,000/10,000 images of
3x32x32, 10 classes) but standard-normal pixels and uniform random labels, made on the fly
from a fixed seed per image: for measuring time and energy per epoch without a download. Its
accuracy is chance (about 0.1) and means nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from greentrain.errors import ConfigError

if TYPE_CHECKING:
    from greentrain.jobs.config import TrainConfig

SPLIT_SEED = 0
VAL_FRACTION = {"mnist": 0.2, "fashion-mnist": 0.2, "cifar10": 0.2, "cifar100": 0.2, "digits": 0.15}
DIGITS_TEST_FRACTION = 0.2

NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "celeba": ((0.5063, 0.4258, 0.3832), (0.3107, 0.2904, 0.2897)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass
class DataBundle:
    """A dataset's splits and shape facts.

    ``task`` is ``"multiclass"`` (integer labels, cross-entropy) or ``"multilabel"`` (CelebA: a
    0/1 vector of ``num_classes`` attributes, BCE). ``input_shape`` is (channels, height, width)
    after the transforms. ``val`` is None where the dataset has no val split (ImageNet).
    """

    name: str
    train: Dataset
    val: Dataset | None
    test: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    task: str = "multiclass"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]


def _not_found(name: str, root: str) -> ConfigError:
    return ConfigError(f"dataset {name} not found in {root}; pass --download or --data-dir")


def _split(dataset: Dataset, val_fraction: float) -> tuple[Subset, Subset]:
    """Fixed random train/val split of ``dataset`` (generator seeded with SPLIT_SEED)."""
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, round(n * val_fraction))
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(n, generator=gen).tolist()
    return Subset(dataset, perm[n_val:]), Subset(dataset, perm[:n_val])


def _digits(val_fraction: float) -> DataBundle:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8) in [0,1]
    y = torch.tensor(bunch.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(len(x), generator=gen)
    n_test = round(len(x) * DIGITS_TEST_FRACTION)
    n_val = round((len(x) - n_test) * val_fraction)
    test_idx, val_idx, train_idx = (
        perm[:n_test],
        perm[n_test : n_test + n_val],
        perm[n_test + n_val :],
    )
    mean = x[train_idx].mean().item()
    std = x[train_idx].std().item()
    x = (x - mean) / std

    def part(idx: torch.Tensor) -> TensorDataset:
        return TensorDataset(x[idx], y[idx])

    return DataBundle(
        name="digits",
        train=part(train_idx),
        val=part(val_idx),
        test=part(test_idx),
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(mean,),
        std=(std,),
    )


SYNTHETIC_SEED = 1234
SYNTHETIC_CIFAR_SPLITS = (40_000, 10_000, 10_000)


class SyntheticImages(Dataset):
    """``n`` images of ``shape`` (standard normal) with uniform labels, the same on every load.

    Image ``i`` is drawn from a generator seeded with ``seed + i``, so nothing is held in memory
    and any worker or epoch sees the same data.
    """

    def __init__(self, n: int, shape: tuple[int, int, int], num_classes: int, seed: int) -> None:
        self.n, self.shape, self.num_classes, self.seed = n, shape, num_classes, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.seed + index)
        x = torch.randn(self.shape, generator=gen)
        y = torch.randint(0, self.num_classes, (), generator=gen)
        return x, y


def _synthetic_cifar10() -> DataBundle:
    n_train, n_val, n_test = SYNTHETIC_CIFAR_SPLITS
    shape = (3, 32, 32)
    offsets = (0, n_train, n_train + n_val)
    train, val, test = (
        SyntheticImages(n, shape, 10, SYNTHETIC_SEED + off)
        for n, off in zip(SYNTHETIC_CIFAR_SPLITS, offsets, strict=True)
    )
    return DataBundle("synthetic-cifar10", train, val, test, 10, shape, mean=(0.0,), std=(1.0,))


def _torchvision(name: str, root: str, download: bool, val_fraction: float) -> DataBundle:
    from torchvision import datasets, transforms

    mean, std = NORMALIZATION[name]
    to_tensor = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    kwargs: dict[str, Any] = {"root": root, "download": download}
    try:
        if name in ("mnist", "fashion-mnist"):
            cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
            tf = transforms.Compose(to_tensor)
            full = cls(train=True, transform=tf, **kwargs)
            test = cls(train=False, transform=tf, **kwargs)
            train, val = _split(full, val_fraction)
            return DataBundle(name, train, val, test, 10, (1, 28, 28), mean=mean, std=std)
        if name in ("cifar10", "cifar100"):
            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            tf = transforms.Compose(to_tensor)
            full = cls(train=True, transform=tf, **kwargs)
            test = cls(train=False, transform=tf, **kwargs)
            train, val = _split(full, val_fraction)
            n_classes = 10 if name == "cifar10" else 100
            return DataBundle(name, train, val, test, n_classes, (3, 32, 32), mean=mean, std=std)
        if name == "celeba":
            tf = transforms.Compose([transforms.Resize((64, 64)), *to_tensor])
            parts = {
                split: datasets.CelebA(split=split, target_type="attr", transform=tf, **kwargs)
                for split in ("train", "valid", "test")
            }
            return DataBundle(
                name,
                parts["train"],
                parts["valid"],
                parts["test"],
                40,
                (3, 64, 64),
                task="multilabel",
                mean=mean,
                std=std,
            )
    except RuntimeError as err:  # torchvision: "Dataset not found [or corrupted] ..."
        if "not found" in str(err).lower():
            raise _not_found(name, root) from err
        raise
    raise ConfigError(f"unknown dataset {name!r}")  # pragma: no cover (validated earlier)


def _imagenet(root: str, download: bool) -> DataBundle:
    from torchvision import datasets, transforms

    if download:
        raise ConfigError(
            "ImageNet cannot be downloaded automatically; get it from image-net.org and pass "
            "--data-dir DIR with DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG"
        )
    mean, std = NORMALIZATION["imagenet"]
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    train_dir, val_dir = os.path.join(root, "train"), os.path.join(root, "val")
    if not (os.path.isdir(train_dir) and os.path.isdir(val_dir)):
        raise ConfigError(
            f"dataset imagenet not found in {root}; pass --data-dir DIR holding train/ and val/ "
            "class folders"
        )
    train = datasets.ImageFolder(train_dir, transform=tf)
    test = datasets.ImageFolder(val_dir, transform=tf)
    if train.classes != test.classes:
        raise ConfigError(f"imagenet train/ and val/ in {root} have different class folders")
    return DataBundle(
        "imagenet", train, None, test, len(train.classes), (3, 224, 224), mean=mean, std=std
    )


def load_for(cfg: TrainConfig, *, download: bool | None = None) -> DataBundle:
    """The dataset a training config names (``--dataset``, ``--data-dir``, ``--val-fraction``).

    ``download`` overrides ``cfg.download`` (under DDP only rank 0 downloads).
    """
    return load_dataset(
        cfg.dataset,
        data_dir=cfg.data_dir,
        download=cfg.download if download is None else download,
        val_fraction=cfg.val_fraction,
    )


def load_dataset(
    name: str,
    *,
    data_dir: str = "data",
    download: bool = False,
    val_fraction: float | None = None,
) -> DataBundle:
    """Load ``name`` with the paper's split and normalisation (see the module docstring).

    Raises ConfigError when the data is missing: "dataset X not found in DIR; pass --download or
    --data-dir".
    """
    if name == "digits":
        return _digits(val_fraction or VAL_FRACTION["digits"])
    if name == "synthetic-cifar10":
        return _synthetic_cifar10()
    if name == "imagenet":
        return _imagenet(data_dir, download)
    if name in NORMALIZATION:
        return _torchvision(name, data_dir, download, val_fraction or VAL_FRACTION.get(name, 0.2))
    raise ConfigError(
        f"unknown dataset {name!r}; choose digits, mnist, fashion-mnist, "
        "cifar10, cifar100, celeba, imagenet or synthetic-cifar10"
    )

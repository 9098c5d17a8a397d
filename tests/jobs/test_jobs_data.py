"""Each dataset path loads a tiny fake copy written in the dataset's real on-disk format.

The files are what torchvision's downloaders leave on disk (MNIST idx-ubyte files, CIFAR python
pickle batches, CelebA's aligned JPEGs + annotation text files, ImageFolder class folders). Only
the MD5 checksums of the original archives cannot match fake contents: for CIFAR and CelebA the
tests replace torchvision's ``check_md5`` (nothing else) so the real loading code runs unchanged.
"""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from greentrain.errors import ConfigError
from greentrain.jobs.data import load_dataset


def _write_idx_images(path: str, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, n, rows, cols))
        f.write(images.astype(np.uint8).tobytes())


def _write_idx_labels(path: str, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 0x00000801, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


def _fake_mnist(root: str, folder: str, n_train: int = 20, n_test: int = 6) -> None:
    raw = os.path.join(root, folder, "raw")
    os.makedirs(raw)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx_images(
            os.path.join(raw, f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28))
        )
        _write_idx_labels(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), rng.integers(0, 10, n))


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_like_loads_idx_files_with_paper_80_20_split(tmp_path, name, folder):
    _fake_mnist(str(tmp_path), folder)
    data = load_dataset(name, data_dir=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 6)
    x, y = data.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert data.num_classes == 10 and data.input_shape == (1, 28, 28)
    assert 0 <= int(y) < 10


@pytest.fixture
def no_md5(monkeypatch):
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(tv_utils, "check_md5", lambda *args, **kwargs: True)


def _pickle(path: str, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loads_python_pickle_batches(tmp_path, name, no_md5):
    rng = np.random.default_rng(0)
    n_classes = 10 if name == "cifar10" else 100
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def batch(n: int) -> dict:
        return {
            "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            label_key: rng.integers(0, n_classes, n).tolist(),
        }

    if name == "cifar10":
        base = tmp_path / "cifar-10-batches-py"
        base.mkdir()
        for i in range(1, 6):
            _pickle(str(base / f"data_batch_{i}"), batch(4))
        _pickle(str(base / "test_batch"), batch(5))
        _pickle(str(base / "batches.meta"), {"label_names": [f"c{i}" for i in range(10)]})
    else:
        base = tmp_path / "cifar-100-python"
        base.mkdir()
        _pickle(str(base / "train"), batch(20))
        _pickle(str(base / "test"), batch(5))
        _pickle(str(base / "meta"), {"fine_label_names": [f"c{i}" for i in range(100)]})
    data = load_dataset(name, data_dir=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 5)
    x, _ = data.test[0]
    assert x.shape == (3, 32, 32)
    assert data.num_classes == n_classes


def _fake_celeba(root: str) -> None:
    base = os.path.join(root, "celeba")
    imgs = os.path.join(base, "img_align_celeba")
    os.makedirs(imgs)
    names = [f"{i:06d}.jpg" for i in range(1, 8)]
    partition = [0, 0, 0, 1, 1, 2, 2]  # >= 2 per split (torchvision squeezes 1 to 0-d)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3)).astype(np.uint8)).save(
            os.path.join(imgs, name)
        )
    attrs = [f"Attr_{i}" for i in range(40)]

    def write(fname: str, lines: list[str]) -> None:
        with open(os.path.join(base, fname), "w") as f:
            f.write("\n".join(lines) + "\n")

    write(
        "list_attr_celeba.txt",
        [str(len(names)), " ".join(attrs)]
        + [n + "  " + " ".join(str(v) for v in rng.choice([-1, 1], 40)) for n in names],
    )
    write("list_eval_partition.txt", [f"{n} {p}" for n, p in zip(names, partition, strict=True)])
    write("identity_CelebA.txt", [f"{n} {i}" for i, n in enumerate(names)])
    write(
        "list_bbox_celeba.txt",
        [str(len(names)), "image_id x_1 y_1 width height"] + [f"{n} 1 2 3 4" for n in names],
    )
    landmarks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
    landmarks += "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    write(
        "list_landmarks_align_celeba.txt",
        [str(len(names)), landmarks] + [n + " " + " ".join(["50"] * 10) for n in names],
    )


def test_celeba_loads_official_partition_resized_to_64_with_40_binary_attributes(tmp_path, no_md5):
    _fake_celeba(str(tmp_path))
    data = load_dataset("celeba", data_dir=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (3, 2, 2)
    x, y = data.train[0]
    assert x.shape == (3, 64, 64)
    assert y.shape == (40,) and set(y.tolist()) <= {0, 1}
    assert data.task == "multilabel" and data.num_classes == 40


def test_imagenet_imagefolder_resizes_256_and_center_crops_224(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (300, 260, 3)).astype(np.uint8)).save(d / "a.JPEG")
    data = load_dataset("imagenet", data_dir=str(tmp_path))
    assert data.val is None and len(data.train) == 2 and len(data.test) == 2
    x, y = data.test[1]
    assert x.shape == (3, 224, 224) and y == 1
    assert data.num_classes == 2


def test_digits_offline_split_is_fixed_and_normalised_by_train_stats():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    x = a.train.tensors[0]
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert a.input_shape == (1, 8, 8)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "celeba", "imagenet"])
def test_missing_dataset_raises_config_error_naming_the_fix(tmp_path, name):
    with pytest.raises(ConfigError, match="not found in"):
        load_dataset(name, data_dir=str(tmp_path / "nothing"))


def test_synthetic_cifar10_has_cifar_shapes_and_splits_and_repeats_its_images():
    data = load_dataset("synthetic-cifar10")
    assert (len(data.train), len(data.val), len(data.test)) == (40_000, 10_000, 10_000)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    x, y = data.train[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= int(y) < 10
    again, _ = load_dataset("synthetic-cifar10").train[7]
    assert torch.equal(x, again)
    assert not torch.equal(x, data.train[8][0])
    assert not torch.equal(data.train[0][0], data.val[0][0])
    with pytest.raises(IndexError):
        data.test[10_000]

"""Fréchet distance maths, the Inception-weights lookup and the classifier-feature proxy FID."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch

from greentrain.errors import ConfigError
from greentrain.jobs import fid


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_frechet_distance_of_identical_feature_sets_is_zero():
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    stats = fid.feature_stats(feats)
    assert fid.frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_gaussians_matches_closed_form():
    # diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # the distance is invariant under a common rotation of both Gaussians (full covariances)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = fid.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_shifted_sample_sets_approaches_the_shift():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 4, generator=gen)
    y = torch.randn(4000, 4, generator=gen) + torch.tensor([3.0, 0.0, 0.0, 4.0])
    value = fid.frechet_distance(*fid.feature_stats(x), *fid.feature_stats(y))
    assert value == pytest.approx(25.0, rel=0.05)


def test_inception_weights_are_found_only_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert fid.inception_weights_path(None) is None
    with pytest.raises(ConfigError, match="--fid-weights"):
        fid.inception_weights_path(str(tmp_path / "missing.pth"))
    cached = tmp_path / "hub" / "checkpoints" / fid.INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert fid.inception_weights_path(None) == str(cached)


@pytest.fixture(scope="module")
def digits_unit():
    """Digits as [0, 1] images: (train x, train y, test x, test y)."""
    from greentrain.jobs.data import load_dataset
    from greentrain.jobs.ddpm_eval import collect, to_unit

    bundle = load_dataset("digits")
    tx, ty = collect(bundle.train, None)
    vx, vy = collect(bundle.test, None)
    return (
        to_unit(tx, bundle.mean, bundle.std),
        ty,
        to_unit(vx, bundle.mean, bundle.std),
        vy,
        bundle,
    )


def test_proxy_fid_on_digits_is_finite_and_larger_for_noise_than_for_real_images(
    digits_unit, tmp_path
):
    tx, ty, vx, vy, _ = digits_unit
    extractor = fid.proxy_extractor(
        tmp_path / "proxy.pt",
        tx,
        ty,
        dataset="digits",
        num_classes=10,
        steps=150,
        test_images=vx,
        test_labels=vy,
    )
    assert extractor.metric == "fid_proxy"
    assert "not Inception" in extractor.detail
    assert extractor.info["test_acc"] > 0.5
    real_vs_real = fid.fid_between(vx[:300], tx[:300], extractor)
    noise = torch.rand(300, *vx.shape[1:], generator=torch.Generator().manual_seed(0))
    real_vs_noise = fid.fid_between(vx[:300], noise, extractor)
    assert math.isfinite(real_vs_real) and math.isfinite(real_vs_noise)
    assert real_vs_noise > 3 * real_vs_real
    # the cached classifier is reused, giving the same feature space
    again = fid.proxy_extractor(
        tmp_path / "proxy.pt", tx, ty, dataset="digits", num_classes=10, steps=150
    )
    assert fid.fid_between(vx[:300], tx[:300], again) == pytest.approx(real_vs_real, rel=1e-5)


def test_absent_inception_weights_fall_back_to_proxy_without_network(
    digits_unit, tmp_path, monkeypatch
):
    from greentrain.jobs.config import TrainConfig
    from greentrain.jobs.ddpm_eval import compute_fid
    from greentrain.jobs.recipes import resolve

    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if (
            isinstance(host, str)
            and host not in ("127.0.0.1", "localhost", "::1")
            and "/" not in host
        ):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    *_, bundle = digits_unit
    cfg = resolve(TrainConfig(model="ddpm", dataset="digits"))
    fake = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    out = compute_fid(fake, bundle, cfg=cfg, out_dir=tmp_path, proxy_steps=30, device="cpu")
    assert out["metric"] == "fid_proxy"
    assert math.isfinite(out["value"]) and out["value"] > 0
    assert out["num_real"] == out["num_fake"] == 64
    assert (tmp_path / "fid_proxy_digits.pt").is_file()


def test_inception_path_gives_2048_d_features_for_gray_images_from_a_local_file(
    tmp_path, monkeypatch
):
    """The real-FID path, with randomly initialised weights written to a local file (the
    genuine weights are never downloaded in tests)."""
    tfi = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    cls = tfi.FeatureExtractorInceptionV3
    with monkeypatch.context() as m:
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(cls, "load_state_dict", lambda self, sd, *a, **k: None)
        net = cls("inception-v3-compat", ["2048"])
    weights = tmp_path / "inception.pth"
    torch.save(net.state_dict(), weights)
    del net

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tfi, "load_state_dict_from_url", no_download)
    extractor = fid.inception_extractor(fid.inception_weights_path(str(weights)))
    assert extractor.metric == "fid"
    feats = extractor.features(torch.rand(3, 1, 8, 8))
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()

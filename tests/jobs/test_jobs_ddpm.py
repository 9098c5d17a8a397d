"""The DDPM job: noise schedule, sampler, UNet shapes, ssProp conversion, and a tiny digits run."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
import torch

from greentrain.errors import ConfigError
from greentrain.jobs.ddpm import train_ddpm
from greentrain.jobs.diffusion import DDPM, strided_timesteps
from greentrain.jobs.unet import build_unet, default_unet_shape

pytest.importorskip("diffusers")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class RecordingClient:
    """Stands in for greentrain.client: keeps what the job reports."""

    def __init__(self) -> None:
        self.params: dict = {}
        self.logs: list[tuple[int | None, dict]] = []
        self.windows: list[str] = []

    def config(self, **params):
        self.params.update(params)

    def log(self, step=None, **metrics):
        self.logs.append((step, metrics))

    def window(self, name, **info):
        self.windows.append(name)
        return contextlib.nullcontext()


@pytest.mark.parametrize("size", [8, 28])
def test_unet_predicts_noise_of_the_input_shape_at_8x8_and_28x28(size):
    base, mults = default_unet_shape(size)
    assert (base, mults) == ((16, (1, 2)) if size == 8 else (16, (1, 2, 4)))
    model = build_unet(1, base, mults, image_size=size)
    x = torch.randn(3, 1, size, size)
    assert model(x, torch.tensor([0, 5, 199])).shape == x.shape
    assert model(x).shape == x.shape  # t omitted -> 0 (for FLOP tracing)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == 8 for m in norms)


def test_unet_rejects_image_sizes_its_levels_cannot_halve():
    with pytest.raises(ConfigError, match="not divisible"):
        build_unet(1, 16, (1, 2, 4, 8), image_size=28)
    with pytest.raises(ConfigError, match="GroupNorm"):
        build_unet(1, 12, (1, 2), image_size=8)


def test_linear_beta_schedule_and_strided_sampling_timesteps():
    d = DDPM(200)
    assert d.betas[0].item() == pytest.approx(1e-4)
    assert d.betas[-1].item() == pytest.approx(0.02)
    assert torch.all(d.alphas_cumprod[1:] < d.alphas_cumprod[:-1])
    assert strided_timesteps(200, 200) == list(range(200))
    assert strided_timesteps(200, 5) == [0, 50, 100, 149, 199]
    with pytest.raises(ConfigError, match="--sample-steps"):
        strided_timesteps(200, 0)


def test_sampler_returns_images_in_range_and_is_reproducible():
    model = build_unet(1, 16, (1, 2), image_size=8).eval()
    d = DDPM(50)
    a = d.sample(model, (4, 1, 8, 8), steps=4, generator=torch.Generator().manual_seed(0))
    b = d.sample(model, (4, 1, 8, 8), steps=4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 8, 8) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_noise_prediction_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_unet(1, 16, (1, 2), image_size=8)
    d = DDPM(200)
    x0 = torch.rand(32, 1, 8, 8) * 2 - 1
    t = torch.randint(0, 200, (32,))
    noise = torch.randn_like(x0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = d.loss(model, x0, t=t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.7 * losses[0]


def test_ssprop_converts_every_unet_convolution_and_trains():
    ssprop = pytest.importorskip("ssprop.convert", reason="ssprop.convert not built yet")
    from ssprop.conv import SparseConv2d
    from ssprop.flops import analyze

    model = build_unet(1, 16, (1, 2), image_size=8)
    n_conv = sum(type(m) is torch.nn.Conv2d for m in model.modules())
    ssprop.convert(model, 0.5)
    assert sum(isinstance(m, SparseConv2d) for m in model.modules()) == n_conv
    assert not any(type(m) is torch.nn.Conv2d for m in model.modules())
    loss = DDPM(200).loss(model, torch.rand(8, 1, 8, 8) * 2 - 1)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    flops = analyze(model, (8, 1, 8, 8))
    assert flops.by_kind()["conv"] > 0
    assert flops.flops_at(0.5) < flops.dense_flops


def _tiny_cfg(tmp_path, **overrides):
    from greentrain.jobs.config import TrainConfig

    values = dict(
        model="ddpm",
        dataset="digits",
        epochs=2,
        batch_size=32,
        max_steps_per_epoch=3,
        limit_eval_batches=1,
        out=str(tmp_path / "out"),
        sample_steps=4,
        num_samples=16,
        fid_samples=64,
        drop=0.8,
        schedule="bar",
        progress=False,
        channel_mults=(1, 2),
        eval_batch_size=64,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_ddpm_job_trains_on_digits_writes_a_sample_grid_and_logs_fid_proxy(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no Inception
    client = RecordingClient()
    result = train_ddpm(_tiny_cfg(tmp_path), client=client, proxy_steps=40)
    assert client.params["job"] == "ddpm" and client.params["drop_rate"] == 0.8
    epochs = [m for _, m in client.logs if "train_loss" in m]
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert all(math.isfinite(m["train_loss"]) and math.isfinite(m["val_loss"]) for m in epochs)
    # bar schedule with a 2-epoch period: epoch 1 dense, epoch 2 at the target rate
    assert [m["drop_rate"] for m in epochs] == [0.0, pytest.approx(0.8)]
    assert epochs[1]["backward_flops_per_iter"] < epochs[0]["backward_flops_per_iter"]
    assert client.windows == ["epoch", "epoch", "eval"]
    fid_logs = [m for _, m in client.logs if "fid_proxy" in m]
    assert len(fid_logs) == 1 and math.isfinite(fid_logs[0]["fid_proxy"])
    assert "fid" not in fid_logs[0]
    assert "not Inception" in fid_logs[0]["fid_extractor"]
    with Image.open(result.samples_png) as img:
        assert img.size[0] >= 4 * 8 and img.size[1] >= 4 * 8
    saved = json.loads((tmp_path / "out" / "fid.json").read_text())
    assert saved["metric"] == "fid_proxy" and saved["sample_steps"] == 4
    assert (tmp_path / "out" / "last.pt").is_file()


def test_ddpm_resume_after_epoch_one_matches_an_uninterrupted_run(tmp_path):
    common = dict(fid_samples=0, num_samples=4, sample_steps=2, schedule="constant")
    full = train_ddpm(_tiny_cfg(tmp_path / "a", **common), client=RecordingClient())
    train_ddpm(_tiny_cfg(tmp_path / "b", **common), client=RecordingClient(), stop_after_epoch=1)
    resumed = train_ddpm(_tiny_cfg(tmp_path / "b", resume=True, **common), client=RecordingClient())
    assert resumed.epochs_done == 2 and len(resumed.history) == 2
    pairs = zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True)
    for (name, p), q in pairs:
        assert torch.equal(p, q), name

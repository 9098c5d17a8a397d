"""The DDPM noise-prediction UNet: diffusers' ``UNet2DModel`` configured as in the ssProp paper.

Why diffusers: it is a well-kept implementation whose convolutions are plain ``nn.Conv2d``
(so ``ssprop.convert`` swaps them for ``SparseConv2d`` without special cases), it has
GroupNorm with a configurable group count (``norm_num_groups``), a sinusoidal time embedding
followed by an MLP, and it accepts any spatial size divisible by ``2 ** (levels - 1)``.

Paper configuration (its code, ``lujiazho/ssProp`` ``train_ddpm.py``): MNIST / Fashion-MNIST use
base 16 channels, multipliers (1, 2, 4), two residual blocks per level, 8-head self-attention
at the lowest resolution only (plus the middle block); CelebA (64x64) uses base 128 and
multipliers (1, 2, 2, 2). :func:`default_unet_shape` returns these per image size. Small
images (the 8x8 ``digits`` set used for CI) get two levels (1, 2) so that the lowest
resolution stays at 4x4.

:class:`DDPMUNet` wraps the diffusers model so that ``forward(x, t)`` returns a plain tensor
(the predicted noise) and ``t`` may be omitted (``t = 0``): FLOP analysers that only know
``model(x)`` can then trace it; the timestep does not change any layer's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from greentrain.errors import ConfigError


def default_unet_shape(image_size: int) -> tuple[int, tuple[int, ...]]:
    """``(base_channels, channel_mults)`` used by the paper for images of ``image_size`` pixels.

    >= 48 px (CelebA 64x64): (128, (1, 2, 2, 2)); >= 16 px (MNIST 28x28): (16, (1, 2, 4));
    smaller (digits 8x8): (16, (1, 2)).
    """
    if image_size >= 48:
        return 128, (1, 2, 2, 2)
    if image_size >= 16:
        return 16, (1, 2, 4)
    return 16, (1, 2)


class DDPMUNet(nn.Module):
    """ε-prediction UNet: ``forward(x, t) -> eps`` with ``x`` of shape (N, C, H, W).

    ``t`` is an integer timestep tensor of shape (N,) or a scalar; ``None`` means 0.
    The wrapped diffusers model is ``self.net``.
    """

    def __init__(self, net: nn.Module, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.net = net
        self.in_channels = in_channels
        self.image_size = image_size

    def forward(self, x: torch.Tensor, t: torch.Tensor | int | None = None) -> torch.Tensor:
        if t is None:
            t = 0
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        elif t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.net(x, t).sample


def build_unet(
    in_channels: int,
    base_channels: int = 16,
    channel_mults: Sequence[int] = (1, 2, 4),
    *,
    image_size: int = 28,
    layers_per_block: int = 2,
    attention: bool = True,
    norm_groups: int = 8,
    attention_heads: int = 8,
    dropout: float = 0.0,
) -> DDPMUNet:
    """Build the paper's DDPM UNet (diffusers ``UNet2DModel``) for ``in_channels``-channel images.

    ``channel_mults``: one entry per resolution level (each level but the last halves H and W);
    ``attention``: self-attention in the lowest-resolution level and the middle block, as in
    the paper; ``norm_groups``: GroupNorm groups, must divide every level's channel count.
    Weights use PyTorch's default (Kaiming-uniform) initialisation.
    Raises :class:`ConfigError` for shapes that cannot work, with the fix in the message.
    """
    try:
        from diffusers import UNet2DModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the DDPM UNet needs the 'diffusers' package: pip install diffusers"
        ) from exc

    mults = tuple(int(m) for m in channel_mults)
    if not mults or min(mults) < 1:
        raise ConfigError(f"channel multipliers {mults} must be positive integers, e.g. 1,2,4")
    if in_channels < 1 or base_channels < 1:
        raise ConfigError("in_channels and base_channels must be >= 1")
    levels = len(mults)
    factor = 2 ** (levels - 1)
    if image_size % factor:
        raise ConfigError(
            f"image size {image_size} is not divisible by {factor} (= 2**(levels-1) for "
            f"{levels} levels): use fewer channel multipliers or pad the images"
        )
    channels = tuple(base_channels * m for m in mults)
    bad = [c for c in channels if c % norm_groups]
    if bad:
        raise ConfigError(
            f"GroupNorm groups {norm_groups} do not divide channel counts {bad}: pick "
            f"--base-channels a multiple of {norm_groups} or fewer groups"
        )
    if attention and channels[-1] % attention_heads:
        raise ConfigError(
            f"{channels[-1]} channels cannot be split into {attention_heads} attention heads"
        )
    down = tuple(
        "AttnDownBlock2D" if attention and i == levels - 1 else "DownBlock2D" for i in range(levels)
    )
    up = tuple("AttnUpBlock2D" if attention and i == 0 else "UpBlock2D" for i in range(levels))
    net = UNet2DModel(
        sample_size=image_size,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=channels,
        down_block_types=down,
        up_block_types=up,
        layers_per_block=layers_per_block,
        norm_num_groups=norm_groups,
        attention_head_dim=channels[-1] // attention_heads,
        add_attention=attention,
        dropout=dropout,
        time_embedding_type="positional",  # sinusoidal embedding + 2-layer MLP (Ho et al.)
    )
    return DDPMUNet(net, in_channels=in_channels, image_size=image_size)

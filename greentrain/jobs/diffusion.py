"""DDPM (Ho et al. 2020) as trained in the ssProp paper: the noise schedule, the loss, the sampler.

- :class:`DDPM`: the linear beta schedule (1e-4 -> 0.02 over ``timesteps``), the forward
  noising ``q(x_t | x_0)``, the epsilon-prediction L2 loss and the ancestral sampler. Sampling
  with fewer steps than ``timesteps`` uses a strided subsequence of the timesteps with the
  respaced betas ``1 - abar_t / abar_prev`` (Nichol & Dhariwal 2021); with all steps it is
  exactly Ho et al.'s sampler with the posterior variance. Predicted ``x_0`` is clipped to
  [-1, 1] at every step (as the paper's code does).

Independent of the rest of greentrain; the UNet is in :mod:`greentrain.jobs.unet`, the training
job in :mod:`greentrain.jobs.ddpm`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from greentrain.errors import ConfigError

BETA_START = 1e-4
BETA_END = 0.02


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

"""Exponential moving average of a model's weights (the generator we sample from)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch_size: int, half_life_kimg: float, rampup: float | None = None, cur_nimg: int = 0) -> float:
    """StyleGAN's decay per step from a half-life in thousands of images.

    With ``rampup`` (e.g. 0.05) the half-life is capped at ``cur_nimg * rampup`` early on.
    """
    half_life_nimg = half_life_kimg * 1000
    if rampup is not None:
        half_life_nimg = min(half_life_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(half_life_nimg, 1e-8))


class EMA(nn.Module):
    """Holds ``module``: a frozen copy of the source model. ``update`` lerps parameters and
    copies buffers (normalisation statistics must follow the source exactly)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, beta: float) -> None:
        for p_ema, p in zip(self.module.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - beta)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

"""A BigGAN-style residual conv block, modulated by a latent vector (the conv baseline's stage).

    x -> norm -> FiLM(w) -> GELU -> conv 3x3 -> norm -> FiLM(w) -> GELU -> conv 3x3 (zero-init) -> + x

FiLM (feature-wise gain and bias predicted from ``w``, as BigGAN's conditional BatchNorm
and StyleGAN's AdaIN do) is the convolutional counterpart of the transformer generator's
cross-attention to the latent tokens: the latent modulates every block, but through global
per-channel statistics instead of per-pixel attention. GroupNorm without affine parameters
(FiLM supplies them): no batch statistics, so no train/eval mismatch and no EMA buffers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FiLMNorm(nn.Module):
    """GroupNorm (no affine), then ``x * (1 + gain(w)) + bias(w)`` per channel."""

    def __init__(self, channels: int, w_dim: int, groups: int = 8):
        super().__init__()
        self.groups = max(1, min(groups, channels))
        while channels % self.groups:
            self.groups -= 1
        self.affine = nn.Linear(w_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)  # starts as plain normalisation
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gain, bias = self.affine(w)[:, :, None, None].chunk(2, dim=1)
        return F.group_norm(x, self.groups) * (1 + gain) + bias


class ModulatedResBlock(nn.Module):
    """Residual block of two 3x3 convs, each preceded by FiLM-modulated normalisation.
    Width-preserving; the last conv is zero-initialised so the block starts as identity."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.norm1 = FiLMNorm(channels, w_dim)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = FiLMNorm(channels, w_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); w: (B, w_dim) -> (B, C, H, W)."""
        y = self.conv1(F.gelu(self.norm1(x, w)))
        y = self.conv2(F.gelu(self.norm2(y, w)))
        return x + y

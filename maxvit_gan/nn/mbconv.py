"""MBConv (inverted residual with squeeze-excite), optionally upsampling 2x.

Layout (pre-norm, ConvNeXt-style single LayerNorm instead of MaxViT's BatchNorms, so a
generator has no train/eval mismatch, no SyncBN and no EMA buffers):

    x -> [up 2x] -> LayerNorm2d -> 1x1 expand (x4) -> GELU -> depthwise 3x3 -> GELU
      -> squeeze-excite (0.25 of the input width) -> 1x1 project (zero-init)
    shortcut: [up 2x] -> 1x1 conv whenever the width changes (identity otherwise)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, per pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    """Channel gating from global average pooling: C -> rd -> C, SiLU then sigmoid."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        expand: int = 4,  # hidden width = expand * out_channels
        se_ratio: float = 0.25,  # squeeze-excite width as a fraction of in_channels
        upsample: bool = False,  # nearest 2x upsampling before the block (main and shortcut)
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        hidden = expand * out_channels
        self.upsample = upsample
        self.norm = LayerNorm2d(in_channels)
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.se = SqueezeExcite(hidden, max(1, int(in_channels * se_ratio)))
        self.project = nn.Conv2d(hidden, out_channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        y = F.gelu(self.expand(self.norm(x)))
        y = F.gelu(self.dwconv(y))
        y = self.project(self.se(y))
        return self.shortcut(x) + y

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
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _conv1x1_nhwc(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv2d applied to a channels-last (..., C) tensor as a matmul (same parameters)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class SqueezeExcite(nn.Module):
    """Channel gating from global average pooling: C -> rd -> C, SiLU then sigmoid. MBConv folds
    the gates into its projection (:meth:`gate` only; no forward of its own)."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, C) gates in (0, 1)."""
        s = x.mean((1, 2))
        return torch.sigmoid(_conv1x1_nhwc(self.expand, F.silu(_conv1x1_nhwc(self.reduce, s))))


class MBConv(nn.Module):
    """Runs channels-last inside: the 1x1 convs are matmuls on (B, H, W, C) and the depthwise
    3x3 conv sees a channels-last NCHW view, so no layout copies between the layers."""

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
        """(B, C, H, W) -> (B, C', H', W') (channels-last memory)."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C'), without the optional upsampling."""
        n = self.norm
        y = F.layer_norm(x, n.normalized_shape, n.weight, n.bias, n.eps)
        y = F.gelu(_conv1x1_nhwc(self.expand, y))
        y = F.gelu(self.dwconv(y.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        # project(y * gate) computed as y @ (W * gate)^T per sample: the gate folds into a
        # (B, C', hidden) weight, saving two passes over the widest tensor (fwd and bwd)
        b, h, w, c = y.shape
        weight = self.project.weight.flatten(1).unsqueeze(0) * self.se.gate(y).unsqueeze(1)  # (B, C', hidden)
        bias = self.project.bias.view(1, 1, -1)
        y = torch.baddbmm(bias, y.reshape(b, h * w, c), weight.transpose(1, 2)).view(b, h, w, -1)
        shortcut = x if isinstance(self.shortcut, nn.Identity) else _conv1x1_nhwc(self.shortcut, x)
        return y + shortcut  # y first: its (contiguous NHWC) layout wins

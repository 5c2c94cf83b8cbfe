"""Discriminator: StyleGAN2-style residual convnet, optional projection for classes.

    RGB ─► 1x1 fromRGB ─► [residual block: conv3x3, conv3x3, blur-downsample; skip: blur-down + 1x1] x log2(R/4)
        ─► 4x4: minibatch stddev ─► conv3x3 ─► fc ─► logit (+ <embed(class), features> when conditional)
                                                    └► optional class head: class logits (AC-GAN style)

HiT's ImageNet D (preset hit_b; docs/hit.md) is the same network with a 3x3 fromRGB
(from_rgb_kernel=3), the blur-downsample between the two convs of a block (blur_position=between:
the second conv runs at half the side), no minibatch stddev (mbstd_group=0) and HiT's widths
(channel_base=16384 = its channel multiplier 1).

LeakyReLU 0.2, no BatchNorm (two forward passes before one backward would break DDP buffer
sync), no equalized learning rate (HiT's D has none); Kaiming init.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from maxvit_gan.models.config import DiscriminatorConfig


class BlurDownsample(nn.Module):
    """[1, 3, 3, 1] low-pass filter with stride 2: halves each side exactly."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = torch.outer(k, k)
        self.register_buffer("kernel", (k / k.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


class DBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, blur_position: str = "after"):
        super().__init__()
        self.blur_between = blur_position == "between"
        self.conv0 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.down = BlurDownsample()
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        if self.blur_between:  # HiT: conv, downsample, conv
            y = F.leaky_relu(self.conv1(self.down(y)), 0.2)
        else:
            y = self.down(F.leaky_relu(self.conv1(y), 0.2))
        return (self.skip(self.down(x)) + y) * math.sqrt(0.5)


def minibatch_stddev(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Append the mean (over features) std (over a group of samples) as one extra channel."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.float().view(g, n // g, c, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n/g,)
    y = y.view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        if cfg.resolution < 8 or cfg.resolution & (cfg.resolution - 1):
            raise ValueError(f"DiscriminatorConfig.resolution must be a power of two >= 8, got {cfg.resolution}")
        if not cfg.channel_base or not cfg.channel_max:
            raise ValueError("DiscriminatorConfig: channel_base and channel_max must be set (use a preset)")
        self.config = cfg
        self.resolution = cfg.resolution
        self.num_classes = cfg.num_classes
        self.mbstd_group = cfg.mbstd_group

        def ch(r: int) -> int:
            return min(cfg.channel_base // r, cfg.channel_max)

        if cfg.from_rgb_kernel not in (1, 3):
            raise ValueError(f"DiscriminatorConfig.from_rgb_kernel must be 1 or 3, got {cfg.from_rgb_kernel}")
        if cfg.blur_position not in ("after", "between"):
            raise ValueError(f"DiscriminatorConfig.blur_position must be 'after' or 'between', got {cfg.blur_position!r}")
        k = cfg.from_rgb_kernel
        self.from_rgb = nn.Conv2d(3, ch(cfg.resolution), k, padding=k // 2)
        blocks, r = [], cfg.resolution
        while r > 4:
            blocks.append(DBlock(ch(r), ch(r // 2), cfg.blur_position))
            r //= 2
        self.blocks = nn.ModuleList(blocks)
        c4 = ch(4)
        self.conv = nn.Conv2d(c4 + (1 if cfg.mbstd_group > 0 else 0), c4, 3, padding=1)
        self.fc = nn.Linear(c4 * 16, c4)
        self.out = nn.Linear(c4, 1)
        self.embed = nn.Embedding(cfg.num_classes, c4) if cfg.num_classes > 0 else None
        if cfg.class_head and cfg.num_classes < 2:
            raise ValueError(f"DiscriminatorConfig.class_head needs >= 2 classes, got num_classes={cfg.num_classes}")
        self.class_head = nn.Linear(c4, cfg.num_classes) if cfg.class_head else None
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=c4**-0.5)

    def forward(self, img: torch.Tensor, labels: torch.Tensor | None = None, class_logits: bool = False):
        """img: (B, 3, R, R) in [-1, 1]; labels: (B,) int64 -> logits (B,).

        With ``class_logits=True`` (needs the class head) returns (logits, class logits (B, classes)).
        """
        if img.ndim != 4 or img.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(
                f"Discriminator: expected images of shape (B, 3, {self.resolution}, {self.resolution}), got {tuple(img.shape)}"
            )
        if self.embed is not None and labels is None:
            raise ValueError(f"Discriminator: conditional model ({self.num_classes} classes) needs labels")
        x = F.leaky_relu(self.from_rgb(img), 0.2)
        for block in self.blocks:
            x = block(x)
        if self.mbstd_group > 0:
            x = minibatch_stddev(x, self.mbstd_group)
        x = F.leaky_relu(self.conv(x), 0.2)
        h = F.leaky_relu(self.fc(x.flatten(1)), 0.2)
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(labels) * h).sum(1)
        if class_logits:
            if self.class_head is None:
                raise ValueError("Discriminator: class_logits=True needs a class head (DiscriminatorConfig.class_head)")
            return logit, self.class_head(h)
        return logit

"""Frozen copy of the original (pre-optimisation) Max-SA / MBConv / MaxViTBlock code.

Tests load the same state dict into these and into maxvit_gan.nn and compare outputs and
gradients: the fast implementation must keep the math. Do not optimise this file.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- partitions


def window_partition(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ph * W/pw, ph * pw, C): contiguous ph x pw tiles, row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // ph, ph, w // pw, pw, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ph * pw, c)


def window_reverse(t: torch.Tensor, ph: int, pw: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    c = t.shape[-1]
    b = t.shape[0] // ((h // ph) * (w // pw))
    t = t.view(b, h // ph, w // pw, ph, pw, c).permute(0, 1, 3, 2, 4, 5)
    return t.reshape(b, h, w, c)


def grid_partition(x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/gh * W/gw, gh * gw, C): each group is the gh x gw tokens spaced
    (H/gh, W/gw) apart."""
    b, h, w, c = x.shape
    x = x.view(b, gh, h // gh, gw, w // gw, c).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, gh * gw, c)


def grid_reverse(t: torch.Tensor, gh: int, gw: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`grid_partition`."""
    c = t.shape[-1]
    b = t.shape[0] // ((h // gh) * (w // gw))
    t = t.view(b, h // gh, w // gw, gh, gw, c).permute(0, 3, 1, 4, 2, 5)
    return t.reshape(b, h, w, c)


# --------------------------------------------------------------------------- attention core


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, use_sdpa: bool = True
) -> torch.Tensor:
    """Scaled dot-product attention, (B, heads, N, d) -> (B, heads, N, d); scale d ** -0.5.

    ``bias`` (additive, broadcastable to (B, heads, N, M)) carries the relative position
    bias and the padding mask (-inf). The reference path computes the softmax in float32
    whatever the autocast dtype; the fused SDPA kernels accumulate it in float32 themselves.
    """
    if use_sdpa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    scale = q.shape[-1] ** -0.5
    logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    probs = logits.float().softmax(dim=-1).to(v.dtype)
    return probs @ v


class RelativePositionBias(nn.Module):
    """Learned bias per head for each relative offset inside a P x P window.

    Table ``((2P-1)^2, heads)``, trunc-normal(0.02) init. A smaller (clamped, possibly
    rectangular) window indexes the same table with its own offsets.
    """

    def __init__(self, window_size: int, num_heads: int):
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self._index_cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _index(self, ph: int, pw: int, device: torch.device) -> torch.Tensor:
        key = (ph, pw, str(device))
        idx = self._index_cache.get(key)
        if idx is None:
            ys, xs = torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing="ij")
            ys, xs = ys.flatten(), xs.flatten()
            p = self.window_size
            dy = ys[:, None] - ys[None, :] + p - 1
            dx = xs[:, None] - xs[None, :] + p - 1
            idx = (dy * (2 * p - 1) + dx).to(device)
            self._index_cache[key] = idx
        return idx

    def forward(self, ph: int, pw: int) -> torch.Tensor:
        """-> (heads, ph*pw, ph*pw)."""
        idx = self._index(ph, pw, self.table.device)
        return self.table[idx].permute(2, 0, 1)


# --------------------------------------------------------------------------- Max-SA sublayers


class _PartitionAttention(nn.Module):
    """Pre-norm multi-head self-attention over a partition of the map, with residual.

    Subclasses choose the partition (tiles or grid). Relative position bias per sublayer.
    """

    partition = staticmethod(window_partition)
    reverse = staticmethod(window_reverse)

    def __init__(self, dim: int, num_heads: int, size: int, use_sdpa: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.size = size
        self.use_sdpa = use_sdpa
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = RelativePositionBias(size, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C): x + attn(norm(x))."""
        b, h, w, c = x.shape
        if c != self.dim:
            raise ValueError(
                f"{type(self).__name__}: expected {self.dim} channels, got input of shape {tuple(x.shape)}"
            )
        sh, sw = min(self.size, h), min(self.size, w)
        hp, wp = math.ceil(h / sh) * sh, math.ceil(w / sw) * sw
        y = self.norm(x)
        if (hp, wp) != (h, w):
            y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
        tokens = self.partition(y, sh, sw)  # (B', N, C)
        bn, n, _ = tokens.shape
        qkv = self.qkv(tokens).view(bn, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B', heads, N, d)
        bias = self.rel_bias(sh, sw).to(q.dtype).unsqueeze(0)  # (1, heads, N, N)
        if (hp, wp) != (h, w):
            bias = bias + self._pad_mask(h, w, hp, wp, sh, sw, b, x.device, q.dtype)
        out = attention(q, k, v, bias, self.use_sdpa)
        out = self.proj(out.transpose(1, 2).reshape(bn, n, c))
        out = self.reverse(out, sh, sw, hp, wp)
        if (hp, wp) != (h, w):
            out = out[:, :h, :w]
        return x + out

    def _pad_mask(self, h, w, hp, wp, sh, sw, b, device, dtype) -> torch.Tensor:
        """Additive key mask (B', 1, 1, N): -inf on padded tokens, 0 elsewhere."""
        valid = torch.zeros(1, hp, wp, 1, device=device, dtype=torch.bool)
        valid[:, :h, :w] = True
        valid = self.partition(valid, sh, sw)[..., 0]  # (groups, N)
        mask = torch.zeros(valid.shape, device=device, dtype=dtype).masked_fill(~valid, float("-inf"))
        return mask.repeat(b, 1)[:, None, None, :]


class BlockAttention(_PartitionAttention):
    """Max-SA block (window) attention: tokens attend within contiguous P x P tiles."""

    partition = staticmethod(window_partition)
    reverse = staticmethod(window_reverse)

    def __init__(self, dim: int, num_heads: int, window_size: int, use_sdpa: bool = True):
        super().__init__(dim, num_heads, window_size, use_sdpa)


class GridAttention(_PartitionAttention):
    """Max-SA grid attention: tokens attend among the G x G tokens spaced H/G apart."""

    partition = staticmethod(grid_partition)
    reverse = staticmethod(grid_reverse)

    def __init__(self, dim: int, num_heads: int, grid_size: int, use_sdpa: bool = True):
        super().__init__(dim, num_heads, grid_size, use_sdpa)


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
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        y = F.gelu(self.expand(self.norm(x)))
        y = F.gelu(self.dwconv(y))
        y = self.project(self.se(y))
        return self.shortcut(x) + y


class FeedForward(nn.Module):
    """Pre-norm MLP with residual on channels-last tokens: x + fc2(GELU(fc1(norm(x))))."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class MaxViTBlock(nn.Module):
    """One MaxViT block on a (B, C, H, W) map (local + global mixing, linear in H*W)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,  # block attention: P x P tiles
        grid_size: int,  # grid attention: G x G tokens spaced H/G apart
        mlp_ratio: float = 4.0,
        mbconv_expand: int = 4,
        use_sdpa: bool = True,
    ):
        super().__init__()
        self.mbconv = MBConv(dim, dim, expand=mbconv_expand)
        self.block_attn = BlockAttention(dim, num_heads, window_size, use_sdpa)
        self.block_mlp = FeedForward(dim, mlp_ratio)
        self.grid_attn = GridAttention(dim, num_heads, grid_size, use_sdpa)
        self.grid_mlp = FeedForward(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mbconv(x)
        t = x.permute(0, 2, 3, 1)  # channels-last between the attention sublayers
        t = self.block_mlp(self.block_attn.forward_nhwc(t))
        t = self.grid_mlp(self.grid_attn.forward_nhwc(t))
        return t.permute(0, 3, 1, 2)

"""MaxViTBlock = MBConv -> block attention + FFN -> grid attention + FFN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from maxvit_gan.nn.attention import BlockAttention, GridAttention
from maxvit_gan.nn.mbconv import MBConv


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
        n = self.norm
        y = F.layer_norm(x, n.normalized_shape, n.weight, n.bias, n.eps)
        return self.fc2(self.act(self.fc1(y))) + x  # new tensor first: its layout wins


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
        """(B, C, H, W) -> (B, C, H, W). Computed channels-last throughout: the result is a
        channels-last NCHW tensor, so the next block's permute to (B, H, W, C) is free."""
        # one copy if x is NCHW-contiguous (none if channels-last); the residual stream then
        # stays contiguous NHWC (a mixed-layout add would keep the NCHW layout and make every
        # later LayerNorm and matmul copy its input)
        t = x.permute(0, 2, 3, 1).contiguous()
        t = self.mbconv.forward_nhwc(t)  # the block's MBConv never upsamples
        t = self.block_mlp(self.block_attn.forward_nhwc(t))
        t = self.grid_mlp(self.grid_attn.forward_nhwc(t))
        return t.permute(0, 3, 1, 2)

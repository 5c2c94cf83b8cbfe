"""Building blocks: Max-SA attention, MBConv, MaxViT block. No training code here."""

from maxvit_gan.nn.attention import (
    BlockAttention,
    CrossAttention,
    GridAttention,
    RelativePositionBias,
    grid_partition,
    grid_reverse,
    set_attention_backend,
    window_partition,
    window_reverse,
)
from maxvit_gan.nn.blocks import FeedForward, MaxViTBlock
from maxvit_gan.nn.mbconv import LayerNorm2d, MBConv, SqueezeExcite
from maxvit_gan.nn.resblock import FiLMNorm, ModulatedResBlock

__all__ = [
    "BlockAttention",
    "CrossAttention",
    "FeedForward",
    "FiLMNorm",
    "GridAttention",
    "LayerNorm2d",
    "MBConv",
    "MaxViTBlock",
    "ModulatedResBlock",
    "RelativePositionBias",
    "SqueezeExcite",
    "grid_partition",
    "grid_reverse",
    "set_attention_backend",
    "window_partition",
    "window_reverse",
]

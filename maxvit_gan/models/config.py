"""Typed model configuration. Pure dataclasses: no Hydra, no training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional


@dataclass
class GeneratorConfig:
    resolution: int = 32  # output side (power of two, >= 16)
    z_dim: int = 256  # latent size
    num_classes: int = 0  # 0 = unconditional
    # One entry per stage, from 8 px up to `resolution` (stage s has side 8 * 2**s).
    channels: Optional[list[int]] = None  # width per stage
    depths: Optional[list[int]] = None  # blocks per stage
    window_sizes: Optional[list[int]] = None  # block-attention window P; 0 = no attention (MBConv stage)
    grid_sizes: Optional[list[int]] = None  # grid-attention size G; 0 = no attention
    head_dim: int = 32  # attention head width (heads = channels // head_dim)
    num_latent_tokens: int = 16  # latent tokens every stage cross-attends to
    mlp_ratio: float = 4.0  # FFN expansion
    mbconv_expand: int = 4  # MBConv expansion
    class_embed_tokens: int = 1  # tokens the class embedding adds to the latent tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"GeneratorConfig: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
        return cls(**d)


@dataclass
class DiscriminatorConfig:
    resolution: int = 32  # input side
    num_classes: int = 0  # 0 = unconditional; else projection discriminator
    channel_base: Optional[int] = None  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: Optional[int] = None
    mbstd_group: int = 4  # minibatch-stddev group size (0 = off)
    cmap_dim: int = 0  # projection embedding size (0 = top width)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelConfig:
    """What the user configures (`model.*`): a preset plus optional overrides.

    Resolution and number of classes come from the data. `build_models` turns this into a
    fully specified GeneratorConfig / DiscriminatorConfig.
    """

    preset: str = "tiny"  # tiny | s | b | l
    z_dim: Optional[int] = None  # overrides of the preset (None = keep the preset's value)
    channels: Optional[list[int]] = None
    depths: Optional[list[int]] = None
    window_sizes: Optional[list[int]] = None
    grid_sizes: Optional[list[int]] = None
    head_dim: Optional[int] = None
    d_channel_base: Optional[int] = None
    d_channel_max: Optional[int] = None
    d_mbstd_group: Optional[int] = None

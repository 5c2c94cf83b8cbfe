"""Typed model configuration. Pure dataclasses: no Hydra, no training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class GeneratorConfig:
    resolution: int = 32  # output side (power of two, >= 16)
    z_dim: int = 256  # latent size
    num_classes: int = 0  # 0 = unconditional
    # One entry per stage, from 8 px up to `resolution` (stage s has side 8 * 2**s).
    channels: list[int] | None = None  # width per stage
    depths: list[int] | None = None  # blocks per stage
    window_sizes: list[int] | None = None  # block-attention window P; 0 = no attention (MBConv stage)
    grid_sizes: list[int] | None = None  # grid-attention size G; 0 = no attention
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
    channel_base: int | None = None  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int | None = None
    mbstd_group: int = 4  # minibatch-stddev group size (0 = off)
    class_head: bool = False  # auxiliary classifier on the top features (AC-GAN style; needs classes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelConfig:
    """What the user configures (`model.*`): a preset plus optional overrides.

    Resolution and number of classes come from the data. `build_models` turns this into a
    fully specified GeneratorConfig / DiscriminatorConfig.
    """

    preset: str = "tiny"  # tiny | s | b | l
    z_dim: int | None = None  # overrides of the preset (None = keep the preset's value)
    channels: list[int] | None = None
    depths: list[int] | None = None
    window_sizes: list[int] | None = None
    grid_sizes: list[int] | None = None
    head_dim: int | None = None
    d_channel_base: int | None = None
    d_channel_max: int | None = None
    d_mbstd_group: int | None = None

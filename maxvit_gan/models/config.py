"""Typed model configuration. Pure dataclasses: no Hydra, no training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Optional, get_type_hints


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
    # maxvit: cross-attention + MaxViT blocks (MBConv at stages with window 0);
    # mbconv: the same without self-attention (every stage MBConv; cross-attention kept);
    # conv: residual 3x3 conv blocks modulated (FiLM) by the pooled latent tokens, no attention
    arch: str = "maxvit"
    upsample: str = "pixel_shuffle"  # between stages: pixel_shuffle (HiT) | icnr (1x1 conv, shuffle; ICNR init) | bilinear (1x1 conv, bilinear 2x)
    # HiT's options (docs/hit.md); the defaults are the original maxvit-gan generator.
    num_heads: list[int] | None = None  # attention heads per stage (None = channels // head_dim)
    highres_block: str = "mbconv"  # block of the attention-free stages: mbconv | mlp (HiT: per-pixel MLP)
    cross_attn_mlp: bool = False  # an FFN after each stage's cross-attention (HiT)
    rgb_skip: str = "bilinear"  # bilinear: to-RGB also at the stage before the attention-free ones, bilinear up | hit: only at attention-free stages, nearest up
    # what the last to-RGB sum goes through: linear (none: StyleGAN, HiT) | clamp (to [-1, 1]: D sees the
    # range the saved images have, so flat white or black areas can be exact) | tanh (DCGAN, BigGAN)
    output: str = "linear"

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
    channel_max: int | None = None  # at most this many channels per layer
    mbstd_group: int = 4  # minibatch-stddev group size (0 = off)
    class_head: bool = False  # auxiliary classifier on the top features (AC-GAN style; needs classes)
    # HiT's ImageNet D (docs/hit.md): channel_base=16384 (its channel multiplier 1), mbstd_group=0, and:
    from_rgb_kernel: int = 1  # fromRGB conv size: 1 (StyleGAN2) | 3 (HiT)
    blur_position: str = "after"  # where a block downsamples: after (both convs at full size) | between (HiT: conv, blur-down, conv)

    def to_dict(self) -> dict:
        return asdict(self)


# Fields that come from the data or the loss, not from `model.*`: the trainer passes them to build_models.
DATA_FIELDS = {
    "generator": ("resolution", "num_classes"),
    "discriminator": ("resolution", "num_classes", "class_head"),
}


def _overrides_schema(cls: type, part: str, name: str) -> type:
    """A dataclass with every field of ``cls`` except the data-derived ones, each ``Optional`` and
    None by default (None = keep the preset's value). Derived, not written out, so that a field
    added to GeneratorConfig / DiscriminatorConfig is settable from YAML under the same name."""
    hints = get_type_hints(cls)
    specs = [
        (f.name, Optional[hints[f.name]], field(default=None)) for f in fields(cls) if f.name not in DATA_FIELDS[part]
    ]
    doc = f"`model.{part}.*`: overrides of the preset's {cls.__name__} fields, by field name (None = preset)."
    return make_dataclass(name, specs, namespace={"__doc__": doc, "__module__": __name__})


GeneratorOverrides = _overrides_schema(GeneratorConfig, "generator", "GeneratorOverrides")
DiscriminatorOverrides = _overrides_schema(DiscriminatorConfig, "discriminator", "DiscriminatorOverrides")


@dataclass
class ModelConfig:
    """What the user configures (`model.*`): a preset plus optional overrides.

    ``generator`` / ``discriminator`` carry the fields of GeneratorConfig / DiscriminatorConfig
    under the same names (None = the preset's value), e.g. ``model.generator.mlp_ratio=2`` or
    ``model.discriminator.channel_base=256``. Resolution and number of classes come from the
    data, the discriminator's class head from ``loss.class_weight``. `build_models` merges
    preset and overrides into a fully specified GeneratorConfig / DiscriminatorConfig.
    """

    preset: str = "tiny"  # tiny | s | b | hit_b | l (maxvit_gan/models/presets.py)
    generator: GeneratorOverrides = field(default_factory=GeneratorOverrides)  # type: ignore[valid-type]  # GeneratorConfig's fields; null = the preset's
    discriminator: DiscriminatorOverrides = field(default_factory=DiscriminatorOverrides)  # type: ignore[valid-type]  # DiscriminatorConfig's; null = the preset's

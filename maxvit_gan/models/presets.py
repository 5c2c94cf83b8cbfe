"""Model presets: values of GeneratorConfig / DiscriminatorConfig fields, by field name.

A preset has a ``generator`` and a ``discriminator`` table whose keys are the fields of
GeneratorConfig / DiscriminatorConfig (the names `model.generator.*` / `model.discriminator.*`
use); fields a preset leaves out keep the dataclass default. A per-stage field (channels,
depths, window_sizes, grid_sizes) is given by stage side: a stage at side ``r`` (8, 16, ...,
resolution) takes the entry for ``r``. Window/grid follow HiT's block sizes (4, 4, 8, 8 at
8..64 px); stages at >= 128 px have no self-attention, as in HiT (MBConv blocks, or HiT's
per-pixel MLP blocks in ``hit_b``). ``at`` holds a preset's changes for one resolution.

``b`` is parameter-matched to HiT-B (not its layout); ``hit_b`` has HiT-B's layout (widths,
depths, heads, block/grid sizes, MLP high-resolution stages, HiT's RGB skip path) with MaxViT
blocks in the attention stages, and HiT's ImageNet discriminator. docs/hit.md compares them.
"""

from __future__ import annotations

from dataclasses import fields

from maxvit_gan.models.config import DATA_FIELDS, DiscriminatorConfig, GeneratorConfig

# Attention sizes by stage side (shared by every preset): window P and grid G; 0 = MBConv-only stage.
WINDOW_SIZES = {8: 4, 16: 4, 32: 8, 64: 8, 128: 0, 256: 0, 512: 0}
GRID_SIZES = {8: 2, 16: 4, 32: 4, 64: 8, 128: 0, 256: 0, 512: 0}

PRESETS: dict[str, dict] = {
    "tiny": dict(  # the CPU demo: cheap per pixel (narrow high-res stages, x2 expansions)
        generator=dict(
            z_dim=128,
            channels={8: 128, 16: 64, 32: 32, 64: 32, 128: 16, 256: 16, 512: 16},
            depths={8: 1, 16: 1, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1},
            window_sizes=WINDOW_SIZES,
            grid_sizes=GRID_SIZES,
            mlp_ratio=2.0,
            mbconv_expand=2,
        ),
        discriminator=dict(channel_base=1024, channel_max=128),
    ),
    "s": dict(
        generator=dict(
            z_dim=256,
            channels={8: 256, 16: 256, 32: 128, 64: 128, 128: 64, 256: 64, 512: 32},
            depths={8: 2, 16: 2, 32: 2, 64: 2, 128: 1, 256: 1, 512: 1},
            window_sizes=WINDOW_SIZES,
            grid_sizes=GRID_SIZES,
        ),
        discriminator=dict(channel_base=16384, channel_max=512),
    ),
    "b": dict(  # parameter-matched to HiT-B, not its layout: 33.9M at 128 px (HiT-B 32.87M), 47.1M at
        # 256 px, sized to the 46.22M of HiT-B with a 512-d latent (its FFHQ setting; with ImageNet's
        # 256-d latent HiT-B has 35.73M at 256 px). StyleGAN2-style D with channel multiplier 2.
        generator=dict(
            z_dim=256,
            channels={8: 384, 16: 384, 32: 256, 64: 128, 128: 128, 256: 64, 512: 32},
            depths={8: 2, 16: 1, 32: 2, 64: 2, 128: 2, 256: 1, 512: 1},
            window_sizes=WINDOW_SIZES,
            grid_sizes=GRID_SIZES,
        ),
        discriminator=dict(channel_base=32768, channel_max=512),
        # the 256-px model narrows its 128-px stage (as HiT) and widens its 8-px stage (HiT does not)
        at={256: dict(generator=dict(channels={8: 448, 128: 64}, depths={16: 2, 128: 1}))},
    ),
    "hit_b": dict(  # HiT-B's layout (official code, 128 and 256 px) with MaxViT blocks; HiT's ImageNet D
        generator=dict(
            z_dim=256,
            channels={8: 512, 16: 512, 32: 256, 64: 128, 128: 128},
            depths={8: 2, 16: 2, 32: 2, 64: 2, 128: 2},
            num_heads={8: 16, 16: 8, 32: 4, 64: 4, 128: 4},
            window_sizes=WINDOW_SIZES,
            grid_sizes=GRID_SIZES,
            highres_block="mlp",
            cross_attn_mlp=True,
            rgb_skip="hit",
        ),
        discriminator=dict(channel_base=16384, channel_max=512, mbstd_group=0, from_rgb_kernel=3, blur_position="between"),
        # HiT-B at 256 px: 128- and 256-px stages 64 wide, one block each
        at={256: dict(generator=dict(channels={128: 64, 256: 64}, depths={128: 1, 256: 1}, num_heads={256: 4}))},
    ),
    "l": dict(
        generator=dict(
            z_dim=256,
            channels={8: 512, 16: 512, 32: 384, 64: 256, 128: 128, 256: 64, 512: 32},
            depths={8: 2, 16: 4, 32: 4, 64: 2, 128: 2, 256: 1, 512: 1},
            window_sizes=WINDOW_SIZES,
            grid_sizes=GRID_SIZES,
        ),
        discriminator=dict(channel_base=32768, channel_max=512),
    ),
}


def stage_sides(resolution: int) -> list[int]:
    """[8, 16, ..., resolution]."""
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")
    sides, r = [], 8
    while r <= resolution:
        sides.append(r)
        r *= 2
    return sides


def preset_values(name: str, part: str, resolution: int) -> dict:
    """The field values preset ``name`` gives ``part`` ("generator" | "discriminator") at
    ``resolution``: resolution-specific changes applied, per-stage tables turned into lists."""
    if name not in PRESETS:
        raise ValueError(f"model.preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS[name][part])
    for key, change in PRESETS[name].get("at", {}).get(resolution, {}).get(part, {}).items():
        values[key] = {**values[key], **change} if isinstance(change, dict) else change
    sides = stage_sides(resolution)
    for key, value in values.items():
        if isinstance(value, dict):  # by stage side
            if sides[-1] not in value:
                raise ValueError(f"model.preset {name!r} has no stage for resolution {resolution}")
            values[key] = [value[r] for r in sides]
    return values


def merge_config(cls: type, part: str, base: dict, overrides: dict):
    """``cls(**base)`` with the non-None ``overrides`` on top, by field name. A key that is no
    field of ``cls`` is an error naming ``model.<part>.<key>``."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        settable = [n for n in names if n not in DATA_FIELDS[part]]
        raise ValueError(
            f"model.{part}.{unknown[0]}: not a field of {cls.__name__}; valid keys: {', '.join(settable)}"
        )
    return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def generator_preset(name: str, resolution: int, num_classes: int = 0, **overrides) -> GeneratorConfig:
    """A fully specified GeneratorConfig for preset ``name`` at ``resolution``.

    ``overrides`` (fields of GeneratorConfig that are not None) win over the preset.
    """
    base = dict(preset_values(name, "generator", resolution), resolution=resolution, num_classes=num_classes)
    return merge_config(GeneratorConfig, "generator", base, overrides)


def discriminator_preset(
    name: str, resolution: int, num_classes: int = 0, **overrides
) -> DiscriminatorConfig:
    """A fully specified DiscriminatorConfig for preset ``name`` at ``resolution``.

    ``overrides`` (fields of DiscriminatorConfig that are not None) win over the preset.
    """
    base = dict(
        preset_values(name, "discriminator", resolution), resolution=resolution, num_classes=num_classes
    )
    return merge_config(DiscriminatorConfig, "discriminator", base, overrides)

"""Model presets: per-stage widths, depths and attention sizes by stage resolution.

A stage at side ``r`` (8, 16, ..., resolution) takes its width, depth and window/grid from
the tables below. Window/grid follow HiT's block sizes (4, 4, 8, 8 at 8..64 px); stages
at >= 128 px have no self-attention (MBConv blocks with skip-to-RGB), as in HiT.
"""

from __future__ import annotations

from dataclasses import replace

from maxvit_gan.models.config import DiscriminatorConfig, GeneratorConfig

# Attention sizes by stage side: (window P, grid G); 0 = MBConv-only stage.
ATTENTION = {8: (4, 2), 16: (4, 4), 32: (8, 4), 64: (8, 8), 128: (0, 0), 256: (0, 0), 512: (0, 0)}

# name -> dict(z_dim, channels by side, depth by side, discriminator channel_base/max)
PRESETS: dict[str, dict] = {
    "tiny": dict(  # the CPU demo: cheap per pixel (narrow high-res stages, x2 expansions)
        z_dim=128,
        channels={8: 128, 16: 64, 32: 32, 64: 32, 128: 16, 256: 16, 512: 16},
        depths={8: 1, 16: 1, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1},
        mlp_ratio=2.0,
        mbconv_expand=2,
        d_base=1024,
        d_max=128,
    ),
    "s": dict(
        z_dim=256,
        channels={8: 256, 16: 256, 32: 128, 64: 128, 128: 64, 256: 64, 512: 32},
        depths={8: 2, 16: 2, 32: 2, 64: 2, 128: 1, 256: 1, 512: 1},
        d_base=16384,
        d_max=512,
    ),
    "b": dict(  # sized to HiT-B: 32.9M parameters at 128 px, 46.2M at 256 px
        z_dim=256,
        channels={8: 384, 16: 384, 32: 256, 64: 128, 128: 128, 256: 64, 512: 32},
        depths={8: 2, 16: 1, 32: 2, 64: 2, 128: 2, 256: 1, 512: 1},
        d_base=32768,
        d_max=512,
        # like HiT, the 256-px model narrows its 128-px stage and widens its 8-px stage
        at={256: dict(channels={8: 448, 128: 64}, depths={16: 2, 128: 1})},
    ),
    "l": dict(
        z_dim=256,
        channels={8: 512, 16: 512, 32: 384, 64: 256, 128: 128, 256: 64, 512: 32},
        depths={8: 2, 16: 4, 32: 4, 64: 2, 128: 2, 256: 1, 512: 1},
        d_base=32768,
        d_max=512,
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


def _preset(name: str, resolution: int) -> dict:
    """The preset's tables with its resolution-specific changes applied."""
    if name not in PRESETS:
        raise ValueError(f"model.preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    p = dict(PRESETS[name])
    for key, changes in p.pop("at", {}).get(resolution, {}).items():
        p[key] = {**p[key], **changes}
    return p


def generator_preset(name: str, resolution: int, num_classes: int = 0, **overrides) -> GeneratorConfig:
    """A fully specified GeneratorConfig for preset ``name`` at ``resolution``.

    ``overrides`` (fields of GeneratorConfig that are not None) win over the preset.
    """
    p = _preset(name, resolution)
    sides = stage_sides(resolution)
    if sides[-1] not in p["channels"]:
        raise ValueError(f"model.preset {name!r} has no stage for resolution {resolution}")
    cfg = GeneratorConfig(
        resolution=resolution,
        z_dim=p["z_dim"],
        num_classes=num_classes,
        channels=[p["channels"][r] for r in sides],
        depths=[p["depths"][r] for r in sides],
        window_sizes=[ATTENTION[r][0] for r in sides],
        grid_sizes=[ATTENTION[r][1] for r in sides],
        mlp_ratio=p.get("mlp_ratio", 4.0),
        mbconv_expand=p.get("mbconv_expand", 4),
    )
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def discriminator_preset(name: str, resolution: int, num_classes: int = 0, **overrides) -> DiscriminatorConfig:
    p = _preset(name, resolution)
    cfg = DiscriminatorConfig(
        resolution=resolution, num_classes=num_classes, channel_base=p["d_base"], channel_max=p["d_max"]
    )
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})

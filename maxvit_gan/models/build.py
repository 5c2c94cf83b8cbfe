"""The one place that turns a ModelConfig into a generator and a discriminator."""

from __future__ import annotations

from maxvit_gan.models.config import DiscriminatorConfig, GeneratorConfig, ModelConfig
from maxvit_gan.models.discriminator import Discriminator
from maxvit_gan.models.generator import Generator
from maxvit_gan.models.presets import discriminator_preset, generator_preset


def resolve_model_configs(
    cfg: ModelConfig, resolution: int, num_classes: int = 0, d_class_head: bool = False
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    g = generator_preset(
        cfg.preset,
        resolution,
        num_classes,
        z_dim=cfg.z_dim,
        channels=cfg.channels,
        depths=cfg.depths,
        window_sizes=cfg.window_sizes,
        grid_sizes=cfg.grid_sizes,
        head_dim=cfg.head_dim,
    )
    d = discriminator_preset(
        cfg.preset,
        resolution,
        num_classes,
        channel_base=cfg.d_channel_base,
        channel_max=cfg.d_channel_max,
        mbstd_group=cfg.d_mbstd_group,
        class_head=d_class_head,
    )
    return g, d


def build_models(
    cfg: ModelConfig, resolution: int, num_classes: int = 0, d_class_head: bool = False
) -> tuple[Generator, Discriminator]:
    """d_class_head: give D an auxiliary classifier (the trainer sets it when loss.class_weight > 0)."""
    g, d = resolve_model_configs(cfg, resolution, num_classes, d_class_head)
    return Generator(g), Discriminator(d)

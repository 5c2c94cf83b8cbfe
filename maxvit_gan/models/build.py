"""The one place that turns a ModelConfig into a generator and a discriminator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass

from maxvit_gan.models.config import DATA_FIELDS, DiscriminatorConfig, GeneratorConfig, ModelConfig
from maxvit_gan.models.discriminator import Discriminator
from maxvit_gan.models.generator import Generator
from maxvit_gan.models.presets import discriminator_preset, generator_preset


def _overrides(cfg: ModelConfig, part: str) -> dict:
    """`model.generator` / `model.discriminator`: the overrides dataclass, or a plain mapping."""
    node = getattr(cfg, part)
    if node is None:
        return {}
    if is_dataclass(node):
        node = asdict(node)
    if not isinstance(node, Mapping):
        raise TypeError(f"model.{part}: expected field overrides, got {type(node).__name__}")
    for key in DATA_FIELDS[part]:
        if node.get(key) is not None:
            raise ValueError(
                f"model.{part}.{key} is not a model setting: it comes from the data or loss.class_weight"
            )
    return {k: v for k, v in node.items() if k not in DATA_FIELDS[part]}


def resolve_model_configs(
    cfg: ModelConfig, resolution: int, num_classes: int = 0, d_class_head: bool = False
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """Preset values, then the non-None overrides of ``cfg.generator`` / ``cfg.discriminator``,
    by field name. Resolution and classes come from the data, the class head from the loss."""
    g = generator_preset(cfg.preset, resolution, num_classes, **_overrides(cfg, "generator"))
    d = discriminator_preset(
        cfg.preset, resolution, num_classes, **_overrides(cfg, "discriminator"), class_head=d_class_head
    )
    return g, d


def build_models(
    cfg: ModelConfig, resolution: int, num_classes: int = 0, d_class_head: bool = False
) -> tuple[Generator, Discriminator]:
    """d_class_head: give D an auxiliary classifier (the trainer sets it when loss.class_weight > 0)."""
    g, d = resolve_model_configs(cfg, resolution, num_classes, d_class_head)
    return Generator(g), Discriminator(d)

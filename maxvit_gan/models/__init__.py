"""Generator, discriminator, EMA and their configuration. No training code here."""

from maxvit_gan.models.build import build_models, resolve_model_configs
from maxvit_gan.models.config import (
    DiscriminatorConfig,
    DiscriminatorOverrides,
    GeneratorConfig,
    GeneratorOverrides,
    ModelConfig,
)
from maxvit_gan.models.discriminator import Discriminator
from maxvit_gan.models.ema import EMA, ema_beta
from maxvit_gan.models.generator import Generator
from maxvit_gan.models.presets import PRESETS, discriminator_preset, generator_preset
from maxvit_gan.models.pretrained import read_generator_metadata, read_metadata, save_generator

__all__ = [
    "EMA",
    "PRESETS",
    "Discriminator",
    "DiscriminatorConfig",
    "DiscriminatorOverrides",
    "Generator",
    "GeneratorConfig",
    "GeneratorOverrides",
    "ModelConfig",
    "build_models",
    "discriminator_preset",
    "ema_beta",
    "generator_preset",
    "read_generator_metadata",
    "read_metadata",
    "resolve_model_configs",
    "save_generator",
]

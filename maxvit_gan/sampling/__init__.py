"""From seeds to pictures.

    parse.py     seeds and classes as the command line gives them
    latents.py   seed -> latent, truncation (``truncnorm`` / ``mean``), slerp
    generate.py  batched generation, grids (one class per row), interpolation strips
    command.py   what ``maxvit-gan sample`` does (``run_sample``)

Loading a generator from a run, checkpoint, file or folder: ``maxvit_gan.loading.load_generator``.
"""

from maxvit_gan.sampling.command import run_sample
from maxvit_gan.sampling.generate import (
    Samples,
    generate,
    generate_images,
    grid_labels,
    grid_shape,
    resolve_device,
    sample_grid,
    sample_interpolations,
)
from maxvit_gan.sampling.latents import (
    DEFAULT_TRUNCATION_MODE,
    TRUNCATION_MODES,
    check_truncation,
    seed_latents,
    slerp,
    truncated_normal,
)
from maxvit_gan.sampling.parse import parse_classes, parse_seeds

__all__ = [
    "DEFAULT_TRUNCATION_MODE",
    "TRUNCATION_MODES",
    "Samples",
    "check_truncation",
    "generate",
    "generate_images",
    "grid_labels",
    "grid_shape",
    "parse_classes",
    "parse_seeds",
    "resolve_device",
    "run_sample",
    "sample_grid",
    "sample_interpolations",
    "seed_latents",
    "slerp",
    "truncated_normal",
]

"""Typed configuration schemas (dataclasses).

Every node of `conf/` is validated against these: a key that is not a field here is an
error naming the key. This module imports nothing from Hydra at import time; call
`register_configs()` (scripts do) to put the schemas into Hydra's ConfigStore.
`training`, `metrics`, `data` take these dataclasses, never a Hydra `DictConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from maxvit_gan.models.config import DiscriminatorConfig, GeneratorConfig


@dataclass
class ModelConfig:
    preset: str = "tiny"  # tiny | s | b | l: fills every generator/discriminator field left at None
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)


@dataclass
class DataConfig:
    name: str = "shapes"  # shapes | folder | zip
    path: Optional[str] = None  # folder or zip path (unused for shapes)
    resolution: int = 32  # output side in pixels
    conditional: bool = True  # use class labels when the dataset has them
    xflip: bool = True  # random horizontal flips (applied in the training step, seeded)
    max_images: Optional[int] = None  # use only N images: a fixed random subset (seed 0), kept in order
    in_memory: bool = False  # zip only: decode everything into one uint8 array up front
    num_workers: int = 2  # DataLoader workers per process
    # shapes only
    shapes_num_images: int = 50000  # length of the procedural dataset (one epoch)
    shapes_num_classes: int = 4
    shapes_seed: int = 0


@dataclass
class PrepareConfig:
    """`scripts/prepare_dataset.py`: image folder -> StyleGAN2-ADA-format zip."""

    source: str = "???"  # image folder (class subfolders = labels; flat = unconditional)
    dest: str = "???"  # output .zip
    resolution: int = "???"  # type: ignore[assignment]  # output side R (ADM center crop)
    max_images: int | None = None  # keep N images: a fixed random subset (seed 0), kept in order
    workers: int | None = None  # decoding processes; None = all CPUs available, 0/1 = in-process
    use_labels: bool = True  # class subfolders -> labels (false: labels null)
    compress_level: int = 0  # PNG zlib level 0-9: 0 = raw (fastest to read), 6 = 25-40% smaller, ~2.5x slower
    overwrite: bool = False  # replace an existing dest
    progress: bool = True  # tqdm progress bar


@dataclass
class FIDConfig:
    every_kimg: float = 0.0  # 0 = no FID during training
    num_samples: int = 10000  # generated samples per evaluation (FID10k: tracking only)
    batch_size: int = 64  # per process
    ref: Optional[str] = None  # None: statistics of the training data; or a .npz / stats file


@dataclass
class MetricsConfig:
    mode: str = "tf"  # tf (torch-fidelity TF-Inception, paper protocol) | clean (clean-fid)
    inception_weights: Optional[str] = None  # local weights file; None = download + cache on first use
    cache_dir: Optional[str] = None  # reference statistics cache; None = ~/.cache/maxvit_gan
    kid: bool = True
    inception_score: bool = True
    fid: FIDConfig = field(default_factory=FIDConfig)

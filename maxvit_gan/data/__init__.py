"""Datasets: procedural shapes (default), image folders, prepared zips.

Every dataset returns `(uint8 tensor [3, R, R], int64 label)` and has `resolution`,
`num_classes` (0 = unconditional), `labels` (numpy int64), `name`, `num_skipped`
and `content_hash`. `dataset_content_hash(path or dataset)` is the one content hash
(the key of cached FID reference statistics).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from maxvit_gan.data.datasets import ImageFolderDataset, ZipDataset, dataset_content_hash, scan_image_folder
from maxvit_gan.data.synthetic import ShapesDataset
from maxvit_gan.data.transforms import center_crop_arr, to_rgb

if TYPE_CHECKING:  # the schema lives in maxvit_gan.config; importing it here would load the models
    from maxvit_gan.config import DataConfig

__all__ = [
    "ImageFolderDataset",
    "ShapesDataset",
    "ZipDataset",
    "build_dataset",
    "center_crop_arr",
    "dataset_content_hash",
    "to_rgb",
]

DATASET_NAMES = ("shapes", "folder", "zip")


def build_dataset(cfg: DataConfig):
    """The dataset `cfg` describes. Errors name the offending `data.*` key."""
    if cfg.resolution is None and cfg.name == "shapes":
        raise ValueError("data.resolution: required for data=shapes (the side of the images), e.g. data.resolution=32")
    if cfg.resolution is not None and cfg.resolution <= 0:
        raise ValueError(f"data.resolution: must be a positive integer, got {cfg.resolution!r}")
    if cfg.max_images is not None and cfg.max_images <= 0:
        raise ValueError(f"data.max_images: must be positive or null, got {cfg.max_images!r}")
    if cfg.name == "shapes":
        num_images = cfg.shapes_num_images
        if cfg.max_images is not None:
            num_images = min(num_images, cfg.max_images)
        try:
            return ShapesDataset(
                resolution=cfg.resolution,
                num_images=num_images,
                num_classes=cfg.shapes_num_classes,
                seed=cfg.shapes_seed,
                conditional=cfg.conditional,
            )
        except ValueError as err:
            raise ValueError(f"data (shapes): {err}") from err
    if cfg.name not in DATASET_NAMES:
        raise ValueError(
            f"data.name: unknown dataset {cfg.name!r} (expected one of {', '.join(DATASET_NAMES)})"
        )
    if not cfg.path:
        raise ValueError(f"data.path: required for data.name={cfg.name}")
    path = os.path.expanduser(cfg.path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data.path: {path!r} does not exist")
    if cfg.name == "folder" and not os.path.isdir(path):
        raise ValueError(
            f"data.path: {path!r} is not a directory (data.name=folder); for a .zip use data=zip"
        )
    if cfg.name == "zip" and not os.path.isfile(path):
        raise ValueError(f"data.path: {path!r} is not a file (data.name=zip); for a folder use data=folder")
    if cfg.resolution is None and cfg.name == "folder":
        try:
            scan_image_folder(path, cfg.conditional)  # an empty or unreadable folder is the first thing to say
        except (OSError, ValueError) as err:
            raise ValueError(f"data.path: {err}") from err
        raise ValueError(
            "data.resolution: required for data=folder (the side the images are center-cropped and resized to), "
            "e.g. data.resolution=64; a prepared zip (maxvit-gan prepare) knows its own"
        )
    try:
        if cfg.name == "folder":
            if cfg.in_memory:
                raise ValueError("data.in_memory: only supported for data.name=zip")
            return ImageFolderDataset(
                path, resolution=cfg.resolution, use_labels=cfg.conditional, max_images=cfg.max_images
            )
        return ZipDataset(
            path,
            resolution=cfg.resolution,
            use_labels=cfg.conditional,
            max_images=cfg.max_images,
            in_memory=cfg.in_memory,
        )
    except (FileNotFoundError, ValueError) as err:
        if str(err).startswith("data."):
            raise
        # the message names the key; the class stays simple (JSONDecodeError and friends do not
        # take a single message argument)
        kind = FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError
        raise kind(f"data.path: {err}") from err

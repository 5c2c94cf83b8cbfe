"""The image grids a run writes: reals once, fixed-seed EMA samples every ``train.grid_kimg``.

The fakes grid is ``maxvit-gan sample``'s grid (:func:`maxvit_gan.sampling.sample_grid`) of seeds
0..rows*cols-1, one class per row, no truncation: ``maxvit-gan sample run=R checkpoint=... seeds=0-63
rows=8`` reproduces a grid saved during training byte for byte. Writes are atomic, and a failed
write (disk full) is a warning: a grid never ends a run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from maxvit_gan.files import atomic_path
from maxvit_gan.images import image_grid
from maxvit_gan.sampling import sample_grid


def grid_seeds(rows: int, cols: int) -> list[int]:
    return list(range(rows * cols))


@torch.no_grad()
def fakes_grid(G, rows: int, cols: int):
    """The EMA generator's grid (PIL): seeds 0..rows*cols-1, row r shows class r mod classes."""
    return sample_grid(G, grid_seeds(rows, cols), rows=rows).image


def reals_grid(dataset, rows: int, cols: int, num_classes: int):
    """A grid of real images (PIL), one class per row as in the fakes grid; a class with fewer
    images than a row leaves its remaining cells white, and a dataset smaller than the grid too."""
    labels = np.asarray(dataset.labels) if num_classes else None
    cells: list[int | None] = []
    for r in range(rows):
        if labels is not None:
            skip = (r // num_classes) * cols  # a repeated class shows other images
            idx = list(np.flatnonzero(labels == r % num_classes)[skip : skip + cols])
        else:
            idx = list(range(r * cols, min((r + 1) * cols, len(dataset))))
        cells += idx + [None] * (cols - len(idx))
    shape = dataset[0][0].shape
    blank = torch.full(shape, 255, dtype=torch.uint8)
    images = torch.stack([dataset[int(i)][0] if i is not None else blank for i in cells])
    return image_grid(images, rows, cols)


def save_png(image, path: Path) -> bool:
    """Write a PNG atomically; a failure is a warning, never the end of a run. True when written."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        return True
    except OSError as err:
        warnings.warn(f"could not write {path} ({err}); training continues", stacklevel=3)
        return False

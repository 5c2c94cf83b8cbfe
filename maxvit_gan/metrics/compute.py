"""One pass over generated samples or over a dataset: features -> FeatureStats (all ranks).

Generated samples: exactly N across all processes; rank r makes the contiguous
global indices ``[offset_r, offset_r + N//W + (r < N%W))``. Sample g draws its
noise (and its label) from its own stream seeded with ``SeedSequence([seed, g])``,
so the N samples are the same for any world size and any batch size.

Dataset: rank r takes the strided indices ``r, r+W, r+2W, ...`` (no duplicates,
no padding), and the global index of an image is its dataset index.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from maxvit_gan.images import quantize_images
from maxvit_gan.metrics.distributed import dist_info, split_count
from maxvit_gan.metrics.stats import FeatureAccumulator, FeatureStats


class LabelSampler:
    """Draws class labels with the empirical frequencies of a dataset's labels.

    ``LabelSampler(labels)``: ``labels`` is the dataset's integer label per image.
    ``sampler(u)`` maps uniforms ``u`` in [0, 1) to labels (inverse CDF), so a seeded
    uniform per sample gives a seeded label per sample.
    """

    def __init__(self, labels: Any):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size == 0:
            raise ValueError("LabelSampler needs at least one label")
        self.classes, counts = np.unique(labels, return_counts=True)
        cdf = np.cumsum(counts, dtype=np.float64)
        self.cdf = torch.from_numpy(cdf / cdf[-1])

    @classmethod
    def uniform(cls, num_classes: int) -> LabelSampler:
        return cls(np.arange(num_classes))

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(self.cdf, u.double().cpu(), right=True).clamp_max(len(self.classes) - 1)
        return torch.from_numpy(self.classes)[idx]


def sample_latents(seed: int, indices: Sequence[int], z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise ``z`` float32 [b, z_dim] and label uniforms ``u`` float64 [b] for global sample indices.

    Sample g uses its own PCG64 stream seeded with ``SeedSequence([seed, g])`` (128-bit state:
    no two (seed, g) pairs collide; torch's CPU generator keeps only 32 bits of a seed).
    """
    zs = np.empty((len(indices), z_dim), dtype=np.float32)
    us = np.empty(len(indices), dtype=np.float64)
    for i, g in enumerate(indices):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(g)])))
        zs[i] = rng.standard_normal(z_dim, dtype=np.float32)
        us[i] = rng.random()
    return torch.from_numpy(zs), torch.from_numpy(us)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled or not sys.stderr.isatty():  # no bar in a log file (SLURM, nohup): it fills it with \r
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, leave=False)


@torch.no_grad()
def compute_generator_stats(
    generator: Callable,
    num_samples: int,
    batch_size: int,
    extractor: Any,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    label_sampler: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    kid_max_samples: int = 10000,
    is_splits: int | None = 10,
    progress: bool = True,
    image_hook: Callable[[torch.Tensor, list[int]], None] | None = None,
) -> FeatureStats:
    """Statistics of exactly ``num_samples`` generated images across all processes.

    ``generator(z, labels)`` with ``z = randn(b, generator.z_dim)`` and ``labels`` int64 [b]
    (None when ``generator.num_classes == 0``), output float in ~[-1, 1]; run in fp32 under
    ``no_grad`` with autocast off: pass the unwrapped EMA generator, in eval mode.
    ``label_sampler``: e.g. ``LabelSampler(dataset_labels)``; None = uniform over
    ``generator.num_classes``. Collectives run inside: call on every rank. Returns the same
    FeatureStats on every rank. ``image_hook(images_uint8, global_indices)``: sees every batch
    too (e.g. ``swd.DescriptorAccumulator.update``: a second metric from the same samples).
    """
    rank, world_size = dist_info(rank, world_size)
    device = torch.device(device)
    z_dim = int(generator.z_dim)
    num_classes = int(getattr(generator, "num_classes", 0) or 0)
    if num_classes > 0 and label_sampler is None:
        label_sampler = LabelSampler.uniform(num_classes)
    offset, count = split_count(num_samples, rank, world_size)
    accumulator = FeatureAccumulator(extractor.dim, num_samples, kid_max_samples, is_splits, device)
    bar = _progress(num_samples, "generated", progress and rank == 0)
    was_training = getattr(generator, "training", False)
    if hasattr(generator, "eval"):
        generator.eval()
    try:
        for start in range(offset, offset + count, batch_size):
            idx = list(range(start, min(start + batch_size, offset + count)))
            z, u = sample_latents(seed, idx, z_dim)
            z = z.to(device)
            labels = label_sampler(u).to(device) if num_classes > 0 else None
            with torch.autocast(device.type, enabled=False):
                images = quantize_images(generator(z, labels))
            accumulator.update(extractor(images), idx)
            if image_hook is not None:
                image_hook(images, idx)
            if bar is not None:
                bar.update(len(idx) * world_size)
    finally:
        if was_training:
            generator.train()
        if bar is not None:
            bar.close()
    stats = accumulator.finalize()
    stats.meta.update(
        kind="generator", num_samples=num_samples, seed=seed, mode=getattr(extractor, "mode", None)
    )
    return stats


@torch.no_grad()
def compute_dataset_stats(
    dataset: Any,
    extractor: Any,
    batch_size: int = 64,
    num_workers: int = 0,
    device: Union[str, torch.device] = "cpu",
    max_items: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    kid_max_samples: int = 10000,
    is_splits: int | None = 10,
    progress: bool = True,
    image_hook: Callable[[torch.Tensor, list[int]], None] | None = None,
) -> FeatureStats:
    """Statistics of a dataset that yields ``(uint8 tensor [3, R, R], label)`` (or just the image).

    Rank r reads indices ``r, r+W, ...`` of the first ``max_items`` (default all); one
    all-reduce at the end. ``image_hook(images_uint8, dataset_indices)`` sees every batch too.
    Call on every rank.
    """
    rank, world_size = dist_info(rank, world_size)
    n = len(dataset) if max_items is None else min(len(dataset), max_items)
    indices = list(range(rank, n, world_size))
    loader = DataLoader(
        Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    accumulator = FeatureAccumulator(extractor.dim, n, kid_max_samples, is_splits, device)
    bar = _progress(n, "reference", progress and rank == 0)
    pos = 0
    for batch in loader:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        if images.dtype != torch.uint8:
            raise TypeError(f"dataset must yield uint8 images, got {images.dtype}")
        b = images.shape[0]
        images = images.to(device)
        accumulator.update(extractor(images), indices[pos : pos + b])
        if image_hook is not None:
            image_hook(images, indices[pos : pos + b])
        pos += b
        if bar is not None:
            bar.update(b * world_size)
    if bar is not None:
        bar.close()
    stats = accumulator.finalize()
    stats.meta.update(kind="dataset", num_items=n, mode=getattr(extractor, "mode", None))
    return stats


__all__ = [
    "LabelSampler",
    "sample_latents",
    "compute_generator_stats",
    "compute_dataset_stats",
]

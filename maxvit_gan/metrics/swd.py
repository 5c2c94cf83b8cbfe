"""Sliced Wasserstein distance of Laplacian-pyramid patches (SWD; Karras et al. 2018, ProGAN).

A quality number that needs no network and no download: how far the distributions of
local 7x7 patches of two image sets are apart, at every scale from R down to 16 px.

The recipe is ProGAN's (``metrics/sliced_wasserstein.py`` of its public code):

1. **Pyramid.** Each uint8 image (values 0..255 as float32) -> a Laplacian pyramid with
   levels R, R/2, ..., 16: level k is ``G_k - up(G_{k+1})``, the last level is the
   Gaussian ``G`` itself. ``down`` = 5x5 binomial filter ``[1 4 6 4 1]^2 / 256`` with
   mirror borders, then every 2nd pixel (``cv2.pyrDown``); ``up`` = zero-stuffing, then
   4 x the same filter (``cv2.pyrUp``).
2. **Descriptors.** Per image and level, ``P`` 7x7x3 neighbourhoods at random centres
   (uniform, at least 3 px from the border): 147 numbers each. ProGAN: P = 128.
3. **Normalisation.** Per set, per level and per colour channel: subtract the mean and
   divide by the (population) standard deviation over all descriptors of the set. (So a
   global colour or contrast change of a whole set is normalised away; SWD sees texture
   and structure, not global colour.)
4. **Sliced Wasserstein.** 4 repeats x 128 random unit directions in R^147; per
   direction, the 1-D Wasserstein-1 distance of the two sets' projections (sorted
   projections, mean absolute difference). The value of a level is the mean over the
   512 directions, x 1e3 (``swd_32px``, ...); ``swd`` is the mean over the levels.

Two sets of different sizes are allowed: the 1-D distance is then the exact W1 of the
two empirical distributions (the integral of the quantile difference), which equals
ProGAN's sorted difference when the sizes are equal.

**Determinism.** Everything comes from ``seed``: the patch centres of image ``g`` (its
global index: generated sample g, or dataset index g) from a ``torch.Generator`` seeded
from ``(seed, g)``; the directions from a ``torch.Generator(seed)``; the reference images
from a seeded permutation. The same images with the same indices give the same number
for any world size and batch size (up to float rounding of the projection matmul).

**Resolution.** Images must be square with side R >= 16. The levels are R, R/2, ... while
the side is >= 16; every side that is halved must be even (every power of two is fine;
48 gives levels 48 and 24; 40 gives 40 and 20; an odd side like 33 is an error).

**Memory.** A descriptor is 147 float32 = 588 bytes, so 128 patches are 75 KB per image
and level. ``P`` is capped so that a set holds at most ``max_descriptors`` (default 2^20,
ProGAN's 8192 images x 128) per level: above 8192 images fewer patches per image,
``P = 2^20 // N``. Gathered on every rank, a set is then at most 617 MB per level
(x the number of levels, in host memory); the distance moves one level of both sets at a
time to ``device``, and projects at most 2^24 numbers per chunk.

**Distributed.** Each rank extracts descriptors of its share of the images (contiguous
blocks of generated samples; strided dataset indices, as ``compute.py``); the
descriptors are all-gathered and put in global index order; the 512 directions of a level
are split over the ranks and the per-direction distances summed with one all-reduce, so
every rank ends with the identical number. Every function that touches a set or a
distance runs collectives: call it on every rank (see the package docstring).

**Floor.** ``swd_reference`` draws two disjoint random sets of real images, A and B, of
``n = min(N, L // 2)`` images each (N = the number of images the score uses, L = the
dataset's size). A is the reference of the score; ``swd(B, A)`` is the real-vs-real floor:
what two independent sets of real images of that size score. Read ``swd 12.3 (floor 4.5)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from maxvit_gan.data import dataset_content_hash
from maxvit_gan.files import atomic_path
from maxvit_gan.images import quantize_images
from maxvit_gan.metrics.compute import LabelSampler, _progress, sample_latents
from maxvit_gan.metrics.distributed import all_gather_rows, all_reduce_sum, dist_info, split_count

NHOOD_SIZE = 7  # patch side
PATCHES_PER_IMAGE = 128  # per image and level (ProGAN)
DIR_REPEATS = 4  # ProGAN: 4 repeats ...
DIRS_PER_REPEAT = 128  # ... of 128 random directions
MIN_RESOLUTION = 16  # the coarsest level
MAX_DESCRIPTORS = 2**20  # per set and level (ProGAN: 8192 images x 128 patches)
DESCRIPTOR_DIM = 3 * NHOOD_SIZE * NHOOD_SIZE
CHUNK_ELEMENTS = 2**24  # projections held at once: directions per chunk = CHUNK_ELEMENTS // set size
RECIPE_VERSION = 1  # part of the reference cache key: bump when a number changes
_POSITION_STREAM = 0x535744  # "SWD": the stream of patch centres, apart from other uses of (seed, g)

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
_GAUSS = (torch.outer(_BINOMIAL, _BINOMIAL) / 256.0).float()


# --------------------------------------------------------------------------- pyramid and descriptors


def swd_resolutions(resolution: int) -> list[int]:
    """The pyramid levels of R x R images: ``[R, R/2, ..., s]`` with ``s >= 16``; a clear error otherwise."""
    r = int(resolution)
    if r < MIN_RESOLUTION:
        raise ValueError(f"swd: images must be at least {MIN_RESOLUTION} x {MIN_RESOLUTION} px, got {r} x {r}")
    levels = [r]
    while levels[-1] // 2 >= MIN_RESOLUTION:
        if levels[-1] % 2:
            raise ValueError(
                f"swd: a {r} px image halves to an odd side {levels[-1]} before reaching {MIN_RESOLUTION} px; "
                f"use a side that halves evenly down to 16..31 px (any power of two >= 16)"
            )
        levels.append(levels[-1] // 2)
    return levels


def _filter(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> torch.Tensor:
    c = x.shape[1]
    k = kernel.to(x.device, x.dtype).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, stride=stride, groups=c)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown: binomial filter with mirror borders (reflect, edge not repeated), every 2nd pixel."""
    return _filter(x, _GAUSS, stride=2)


def _pyr_up(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrUp: zero-stuff to twice the side, then 4 x the binomial filter with mirror borders."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _filter(up, _GAUSS * 4.0, stride=1)


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """uint8 (or float 0..255) [B, 3, R, R] -> ``num_levels`` float32 levels, finest first; the last is Gaussian."""
    gauss = [images.float()]
    for _ in range(1, num_levels):
        gauss.append(_pyr_down(gauss[-1]))
    return [g - _pyr_up(g_next) for g, g_next in zip(gauss[:-1], gauss[1:])] + [gauss[-1]]


def patches_per_image(num_images: int, max_descriptors: int = MAX_DESCRIPTORS) -> int:
    """ProGAN's 128, or fewer so that ``num_images`` images give at most ``max_descriptors`` (at least 1)."""
    return max(1, min(PATCHES_PER_IMAGE, int(max_descriptors) // max(1, int(num_images))))


def patch_centres(seed: int, index: int, resolutions: Sequence[int], patches: int) -> torch.Tensor:
    """int64 [levels, 2, patches]: (row, column) centres of image ``index``'s patches, uniform in
    ``[3, S - 3)`` per level of side S; from a torch.Generator seeded from ``(seed, index)``."""
    state = int(np.random.SeedSequence([int(seed), _POSITION_STREAM, int(index)]).generate_state(1)[0])
    gen = torch.Generator().manual_seed(state)
    u = torch.rand(len(resolutions), 2, patches, generator=gen, dtype=torch.float64)
    half = NHOOD_SIZE // 2
    span = torch.tensor([s - 2 * half for s in resolutions], dtype=torch.float64).view(-1, 1, 1)
    return half + (u * span).long()


def extract_descriptors(
    images: torch.Tensor, indices: Sequence[int], seed: int, patches: int
) -> list[torch.Tensor]:
    """uint8 [B, 3, R, R] with global indices -> per level float32 [B * patches, 147] (image-major, raw values)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"swd: expected uint8 images [N, 3, R, R], got {images.dtype} {tuple(images.shape)}")
    if len(indices) != images.shape[0]:
        raise ValueError(f"swd: {images.shape[0]} images but {len(indices)} indices")
    resolutions = swd_resolutions(images.shape[-1])
    b, dev = images.shape[0], images.device
    centres = torch.stack([patch_centres(seed, g, resolutions, patches) for g in indices]).to(dev)  # [B,L,2,P]
    off = torch.arange(NHOOD_SIZE, device=dev) - NHOOD_SIZE // 2
    plane = torch.arange(b, device=dev).view(b, 1) * 3 + torch.arange(3, device=dev)  # [B, 3]: image, channel
    out = []
    for k, level in enumerate(laplacian_pyramid(images, len(resolutions))):
        s = level.shape[-1]
        rows = centres[:, k, 0].view(b, patches, 1, 1, 1) + off.view(1, 1, 1, -1, 1)
        cols = centres[:, k, 1].view(b, patches, 1, 1, 1) + off.view(1, 1, 1, 1, -1)
        idx = (plane.view(b, 1, 3, 1, 1) * s + rows) * s + cols  # [B, P, 3, 7, 7] into the flat level
        out.append(level.reshape(-1)[idx.reshape(-1)].view(b * patches, DESCRIPTOR_DIM))
    return out


@dataclasses.dataclass
class SWDDescriptors:
    """The descriptors of one image set: ``levels[side]`` float32 [num_images * patches_per_image, 147]
    on the CPU, raw pyramid values (not normalised), image-major in global index order."""

    levels: dict[int, torch.Tensor]
    num_images: int
    patches_per_image: int
    seed: int

    @property
    def resolutions(self) -> list[int]:
        return list(self.levels)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.levels.values())


class DescriptorAccumulator:
    """Collects the descriptors of this rank's images; ``finalize()`` gathers them (collective).

    ``update(images, indices)``: uint8 [b, 3, R, R] and their global indices (the patch centres
    depend on ``(seed, index)`` only). ``patches``: per image and level; the caller picks it from
    the total number of images (``patches_per_image``) so that every rank uses the same.
    """

    def __init__(self, resolution: int, patches: int, seed: int = 0):
        self.resolutions = swd_resolutions(resolution)
        self.resolution, self.patches, self.seed = int(resolution), int(patches), int(seed)
        self.parts: list[list[torch.Tensor]] = [[] for _ in self.resolutions]
        self.indices: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, images: torch.Tensor, indices: Sequence[int]) -> None:
        if images.shape[-1] != self.resolution:
            raise ValueError(f"swd: expected {self.resolution} px images, got {tuple(images.shape)}")
        for part, desc in zip(self.parts, extract_descriptors(images, indices, self.seed, self.patches)):
            part.append(desc.cpu())
        self.indices.append(torch.as_tensor(list(indices), dtype=torch.int64))

    def finalize(self) -> SWDDescriptors:
        """All ranks' descriptors, in global index order, on every rank (collective)."""
        idx = all_gather_rows(torch.cat(self.indices) if self.indices else torch.zeros(0, dtype=torch.int64))
        order = torch.argsort(idx, stable=True)
        in_order = bool((order == torch.arange(len(order))).all())  # contiguous shares: no reordering copy
        rows = (order.view(-1, 1) * self.patches + torch.arange(self.patches)).reshape(-1)
        levels = {}
        for k, res in enumerate(self.resolutions):
            local = torch.cat(self.parts[k]) if self.parts[k] else torch.zeros(0, DESCRIPTOR_DIM)
            self.parts[k] = []
            gathered = all_gather_rows(local)
            del local
            levels[res] = gathered if in_order else gathered[rows]
        return SWDDescriptors(levels, int(idx.numel()), self.patches, self.seed)


# --------------------------------------------------------------------------- the distance


def swd_directions(seed: int, num_levels: int) -> torch.Tensor:
    """float32 [levels, 512, 147]: per level 4 x 128 random unit directions (ProGAN), from torch.Generator(seed)."""
    g = torch.Generator().manual_seed(int(seed))
    dirs = torch.randn(num_levels, DIR_REPEATS * DIRS_PER_REPEAT, DESCRIPTOR_DIM, generator=g, dtype=torch.float64)
    return (dirs / dirs.norm(dim=-1, keepdim=True)).float()


def normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """[n, 147] -> per colour channel zero mean, unit (population) std over the whole set; float32.
    Mean and variance in two passes, summed per descriptor in float32 and over descriptors in
    float64; a constant channel (std 0) is only centred."""
    x = desc.float().view(desc.shape[0], 3, -1)
    count = x.shape[0] * x.shape[2]
    mean = (x.sum(dim=2).double().sum(dim=0) / count).float().view(1, 3, 1)
    centred = x - mean
    var = centred.square().sum(dim=2).double().sum(dim=0) / count
    std = torch.where(var > 0, var.sqrt(), torch.ones_like(var)).float().view(1, 3, 1)
    return (centred / std).view(desc.shape[0], -1)


def _w1_sorted(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """Row-wise exact W1 of two sorted samples [c, n], [c, m] (the integral of |quantile difference|)."""
    n, m = pa.shape[1], pb.shape[1]
    if n == m:
        return (pa - pb).abs_().sum(dim=1).double() / n  # torch's float32 sum is cascaded: ~1e-7 relative
    dev = pa.device
    # breakpoints i/n and j/m of both quantile functions, scaled by n*m to stay integers
    t = torch.sort(torch.cat([torch.arange(1, n + 1, device=dev) * m, torch.arange(1, m + 1, device=dev) * n])).values
    width = torch.diff(t, prepend=t.new_zeros(1))
    mid2 = 2 * t - width  # twice the midpoint of each segment
    ia, ib = (mid2 // (2 * m)).clamp_max(n - 1), (mid2 // (2 * n)).clamp_max(m - 1)
    return (pa[:, ia] - pb[:, ib]).abs().double() @ width.double() / (n * m)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row. On the CPU numpy's vectorised sort (about 20x torch's for float32 here)."""
    if x.device.type == "cpu":
        x.numpy().sort(axis=1)  # in place: x is a fresh projection
        return x
    return torch.sort(x, dim=1).values


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """float64 [k]: the 1-D Wasserstein-1 distance of ``a`` [n, d] and ``b`` [m, d] projected on each of
    ``directions`` [k, d] (unit rows). Pure computation, chunked over directions."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError(f"swd: an empty set ({a.shape[0]} and {b.shape[0]} descriptors)")
    chunk = max(1, CHUNK_ELEMENTS // max(a.shape[0], b.shape[0]))
    out = []
    for s in range(0, directions.shape[0], chunk):
        d = directions[s : s + chunk]
        out.append(_w1_sorted(_sort_rows(d @ a.T), _sort_rows(d @ b.T)))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def swd_distance(
    fake: SWDDescriptors,
    real: SWDDescriptors,
    seed: int = 0,
    device: Union[str, torch.device] = "cpu",
    prefix: str = "swd",
    normalized_real: dict[int, torch.Tensor] | None = None,
) -> dict[str, float]:
    """SWD x 1e3 of two descriptor sets: ``{prefix: mean, f"{prefix}_{side}px": per level}``.

    The directions of each level are split over the ranks; one all-reduce: call on every
    rank; every rank returns the same numbers. ``normalized_real``: ``normalize_descriptors``
    of ``real``'s levels, when the caller keeps them (saves recomputing them per call).
    """
    if fake.resolutions != real.resolutions:
        raise ValueError(f"swd: the sets have different pyramid levels: {fake.resolutions} and {real.resolutions}")
    device = torch.device(device)
    rank, world = dist_info()
    dirs = swd_directions(seed, len(real.resolutions))
    k = dirs.shape[1]
    off, cnt = split_count(k, rank, world)
    per_dir = torch.zeros(len(real.resolutions), k, dtype=torch.float64)
    for i, res in enumerate(real.resolutions):
        a = normalize_descriptors(fake.levels[res].to(device))
        if normalized_real is not None:
            b = normalized_real[res].to(device)
        else:
            b = normalize_descriptors(real.levels[res].to(device))
        per_dir[i, off : off + cnt] = sliced_wasserstein(a, b, dirs[i, off : off + cnt].to(device)).cpu()
        del a, b
    per_dir = all_reduce_sum(per_dir)
    levels = (per_dir.mean(dim=1) * 1e3).tolist()
    out = {prefix: float(np.mean(levels))}
    out.update({f"{prefix}_{res}px": v for res, v in zip(real.resolutions, levels)})
    return out


# --------------------------------------------------------------------------- image sets -> descriptors


@torch.no_grad()
def image_descriptors(
    images: Union[torch.Tensor, Iterable],
    seed: int = 0,
    batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
    num_images: int | None = None,
    patches: int | None = None,
) -> SWDDescriptors:
    """Descriptors of uint8 images: a tensor [N, 3, R, R] (the same on every rank: each rank takes
    its contiguous share) or an iterable of batches (tensors or (tensor, ...) tuples; under
    several processes each rank's stream is its strided share: its i-th image is global
    index ``i * W + rank``, as a DistributedSampler without shuffling gives). ``patches``: per
    image; default ``patches_per_image(N)`` (N = ``num_images``, or the tensor's length; 128
    for a stream without ``num_images``). Collective: call on every rank."""
    rank, world = dist_info()
    device = torch.device(device)
    if isinstance(images, torch.Tensor):
        n = images.shape[0] if num_images is None else num_images
        off, cnt = split_count(images.shape[0], rank, world)
        batches: Iterable = (
            (images[s : min(s + batch_size, off + cnt)], range(s, min(s + batch_size, off + cnt)))
            for s in range(off, off + cnt, batch_size)
        )
    else:
        n = num_images
        batches = _indexed_stream(images, rank, world)
    acc = None
    patches = patches or (patches_per_image(n) if n else PATCHES_PER_IMAGE)
    for batch, idx in batches:
        if acc is None:
            acc = DescriptorAccumulator(batch.shape[-1], patches, seed)
        acc.update(batch.to(device), list(idx))
    # a rank without images learns the resolution from the others (sum of sides / ranks with images)
    side, ranks = all_reduce_sum(torch.tensor([acc.resolution if acc else 0, 1 if acc else 0], dtype=torch.float64))
    if ranks.item() == 0:
        raise ValueError("swd: no images")
    return (acc or DescriptorAccumulator(int(side.item() / ranks.item()), patches, seed)).finalize()


def _indexed_stream(stream: Iterable, rank: int, world: int):
    pos = 0
    for batch in stream:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        yield x, [(pos + i) * world + rank for i in range(x.shape[0])]
        pos += x.shape[0]


def swd(
    images_a: Union[torch.Tensor, Iterable],
    images_b: Union[torch.Tensor, Iterable],
    seed: int = 0,
    batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
) -> dict[str, float]:
    """SWD (x 1e3, ProGAN) between two sets of uint8 images [N, 3, R, R] (or streams of batches):
    ``{"swd": mean, "swd_32px": ..., "swd_16px": ...}``. Collective: call on every rank."""
    a = image_descriptors(images_a, seed, batch_size, device)
    b = image_descriptors(images_b, seed, batch_size, device)
    return swd_distance(a, b, seed, device)


@torch.no_grad()
def generator_descriptors(
    generator: Callable,
    num_samples: int,
    batch_size: int,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    label_sampler: Callable[[torch.Tensor], torch.Tensor] | None = None,
    patches: int | None = None,
    progress: bool = True,
    patch_seed: int | None = None,
) -> SWDDescriptors:
    """Descriptors of exactly ``num_samples`` generated images across all processes: the same
    samples as ``compute_generator_stats`` with the same seed (latents ``sample_latents(seed, g)``,
    fp32, no autocast, eval mode, ``quantize_images``); no Inception. ``patch_seed``: seed of the
    patch centres (default ``seed``). Collective."""
    rank, world = dist_info()
    device = torch.device(device)
    z_dim = int(generator.z_dim)
    num_classes = int(getattr(generator, "num_classes", 0) or 0)
    if num_classes > 0 and label_sampler is None:
        label_sampler = LabelSampler.uniform(num_classes)
    patch_seed = seed if patch_seed is None else patch_seed
    acc = DescriptorAccumulator(int(generator.resolution), patches or patches_per_image(num_samples), patch_seed)
    offset, count = split_count(num_samples, rank, world)
    bar = _progress(num_samples, "swd generated", progress and rank == 0)
    was_training = getattr(generator, "training", False)
    if hasattr(generator, "eval"):
        generator.eval()
    try:
        for start in range(offset, offset + count, batch_size):
            idx = list(range(start, min(start + batch_size, offset + count)))
            z, u = sample_latents(seed, idx, z_dim)
            labels = label_sampler(u).to(device) if num_classes > 0 else None
            with torch.autocast(device.type, enabled=False):
                acc.update(quantize_images(generator(z.to(device), labels)), idx)
            if bar is not None:
                bar.update(len(idx) * world)
    finally:
        if was_training:
            generator.train()
        if bar is not None:
            bar.close()
    return acc.finalize()


@torch.no_grad()
def dataset_descriptors(
    dataset: Any,
    indices: Sequence[int] | None = None,
    batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    patches: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> SWDDescriptors:
    """Descriptors of ``dataset[i]`` for ``i`` in ``indices`` (default all); the dataset yields
    ``(uint8 [3, R, R], label)`` or the image. Rank r reads every W-th of ``indices``. Collective."""
    rank, world = dist_info()
    indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    mine = indices[rank::world]
    first = dataset[indices[0]]
    resolution = int((first[0] if isinstance(first, (list, tuple)) else first).shape[-1])
    acc = DescriptorAccumulator(resolution, patches or patches_per_image(len(indices)), seed)
    loader = DataLoader(Subset(dataset, mine), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    bar = _progress(len(indices), "swd reals", progress and rank == 0)
    pos = 0
    for batch in loader:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        if images.dtype != torch.uint8:
            raise TypeError(f"dataset must yield uint8 images, got {images.dtype}")
        acc.update(images.to(device), mine[pos : pos + images.shape[0]])
        pos += images.shape[0]
        if bar is not None:
            bar.update(images.shape[0] * world)
    if bar is not None:
        bar.close()
    return acc.finalize()


# --------------------------------------------------------------------------- reference and floor


@dataclasses.dataclass
class SWDReference:
    """Set A of real images (the reference of every score) and the real-vs-real floor ``swd(B, A)``.

    ``descriptors``: A's raw descriptors; ``normalized``: A's normalised levels (kept: every score
    needs them); ``floor``: ``{"swd_floor": ..., "swd_floor_32px": ...}``; ``num_images``: |A| = |B|.
    """

    descriptors: SWDDescriptors
    floor: dict[str, float]
    num_images: int
    seed: int
    meta: dict = dataclasses.field(default_factory=dict)
    normalized: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not self.normalized:
            self.normalized = {r: normalize_descriptors(t) for r, t in self.descriptors.levels.items()}

    def score(self, fake: SWDDescriptors, device: Union[str, torch.device] = "cpu") -> dict[str, float]:
        """``{"swd", "swd_<side>px", ..., "swd_floor", "swd_floor_<side>px", ..., "swd_ref_n"}`` (collective)."""
        out = swd_distance(fake, self.descriptors, self.seed, device, normalized_real=self.normalized)
        return {**out, **self.floor, "swd_ref_n": self.num_images}


def reference_split(num_items: int, num_samples: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Two disjoint random sets of ``min(num_samples, num_items // 2)`` indices (A, B), each sorted."""
    n = min(int(num_samples), int(num_items) // 2)
    if n < 1:
        raise ValueError(f"swd: the real-vs-real floor needs at least 2 real images, the reference has {num_items}")
    perm = torch.randperm(int(num_items), generator=torch.Generator().manual_seed(int(seed)))
    return sorted(perm[:n].tolist()), sorted(perm[n : 2 * n].tolist())


def _cache_key(content_hash: str, resolution: int, num_items: int, n: int, patches: int, seed: int) -> str:
    blob = dict(data=content_hash, resolution=resolution, items=num_items, n=n, patches=patches, seed=seed,
                nhood=NHOOD_SIZE, dirs=[DIR_REPEATS, DIRS_PER_REPEAT], recipe=RECIPE_VERSION)  # fmt: skip
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def default_swd_cache_dir() -> Path:
    return Path(os.environ.get("MAXVIT_GAN_CACHE", Path.home() / ".cache" / "maxvit_gan")) / "swd_refs"


def _save_cache(path: Path, ref: SWDReference) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"level_{r}": t.numpy() for r, t in ref.descriptors.levels.items()}
    arrays["meta"] = np.array(json.dumps(dict(ref.meta, floor=ref.floor), sort_keys=True, default=str))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # the umask's permissions (mkstemp: 0600)
        np.savez(f, **arrays)


def _load_cache(path: Path, key: str, seed: int) -> SWDReference | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("key") != key:
                return None
            levels = {int(k[6:]): torch.from_numpy(data[k].copy()) for k in data.files if k.startswith("level_")}
    except (OSError, ValueError, KeyError):
        return None
    levels = dict(sorted(levels.items(), reverse=True))
    floor = meta.pop("floor")
    desc = SWDDescriptors(levels, int(meta["n"]), int(meta["patches"]), seed)
    return SWDReference(desc, floor, int(meta["n"]), seed, dict(meta, cache="hit", path=str(path)))


@torch.no_grad()
def swd_reference(
    dataset: Any,
    num_samples: int,
    seed: int = 0,
    batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
    cache_dir: Union[str, Path, None, bool] = None,
    content_hash: str | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> SWDReference:
    """The reference set A and the floor ``swd(B, A)`` for scores of ``num_samples`` images.

    A and B: ``reference_split(len(dataset), num_samples, seed)``. ``cache_dir``: None or False =
    no disk cache; True = ``default_swd_cache_dir()``; a path = there. The cache key holds the
    dataset's content hash, the resolution, the sizes, the seed and the recipe; the file holds
    A's descriptors (n x P x 147 float32 per level: 75 KB per image and level at P = 128) and
    the floor; rank 0 writes it atomically. Collective: call on every rank.
    """
    num_items = len(dataset)
    a_idx, b_idx = reference_split(num_items, num_samples, seed)
    n, patches = len(a_idx), patches_per_image(len(a_idx))
    path = key = None
    meta: dict = dict(n=n, patches=patches, num_items=num_items, seed=seed)
    if cache_dir is not None and cache_dir is not False:
        first = dataset[0]
        resolution = int((first[0] if isinstance(first, (list, tuple)) else first).shape[-1])
        content_hash = content_hash or dataset_content_hash(dataset)
        key = _cache_key(content_hash, resolution, num_items, n, patches, seed)
        root = default_swd_cache_dir() if cache_dir is True else Path(cache_dir).expanduser()
        path = root / f"swd-{resolution}px-n{n}-{key[:20]}.npz"
        meta.update(key=key, data=content_hash, resolution=resolution)
        missing = all_reduce_sum(torch.tensor([0.0 if path.is_file() else 1.0], dtype=torch.float64)).item()
        if missing == 0:
            ref = _load_cache(path, key, seed)
            ok = all_reduce_sum(torch.tensor([0.0 if ref is not None else 1.0], dtype=torch.float64)).item() == 0
            if ok:
                return ref
    common = dict(batch_size=batch_size, device=device, seed=seed, patches=patches, num_workers=num_workers,
                  progress=progress)  # fmt: skip
    a = dataset_descriptors(dataset, a_idx, **common)
    b = dataset_descriptors(dataset, b_idx, **common)
    ref = SWDReference(a, {}, n, seed, dict(meta, cache="miss" if path else None))
    ref.floor = swd_distance(b, a, seed, device, prefix="swd_floor", normalized_real=ref.normalized)
    if path is not None:
        if dist_info()[0] == 0:
            _save_cache(path, ref)
        ref.meta["path"] = str(path)
    return ref


def generator_swd(
    generator: Callable,
    reference: SWDReference,
    num_samples: int,
    batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
    seed: int | None = None,
    label_sampler: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """SWD of ``num_samples`` generated images against ``reference``, with its floor:
    ``{"swd", "swd_<side>px"..., "swd_floor", "swd_floor_<side>px"..., "swd_n", "swd_ref_n"}``.
    ``seed``: the noise seed of the samples (default the reference's; the patch centres and the
    directions are always the reference's). Collective."""
    fake = generator_descriptors(
        generator, num_samples, batch_size, device, reference.seed if seed is None else seed, label_sampler,
        progress=progress, patch_seed=reference.seed,
    )  # fmt: skip
    return {**reference.score(fake, device), "swd_n": num_samples}


class GeneratorSWD:
    """SWD of a generator against a dataset, for tracking during training.

    ``GeneratorSWD(dataset, num_samples, batch_size, device, seed)`` once; then
    ``metric(G_ema) -> {"swd", "swd_floor", "swd_<side>px"..., "swd_floor_<side>px"..., "swd_n", "swd_ref_n"}``
    on every rank at every evaluation. The reference set and the floor are computed on the
    first call and kept (in memory; on disk too with ``cache_dir``). Labels of a conditional
    generator follow the dataset's ``labels`` frequencies. Use a fixed ``seed`` (not the
    training seed) to compare runs: it picks the reference images, patches and directions.
    """

    def __init__(self, dataset: Any, num_samples: int, batch_size: int = 64, device: Union[str, torch.device] = "cpu",
                 seed: int = 0, cache_dir: Union[str, Path, None, bool] = None, progress: bool = False):  # fmt: skip
        self.dataset, self.num_samples, self.batch_size = dataset, int(num_samples), int(batch_size)
        self.device, self.seed = torch.device(device), int(seed)
        self.cache_dir, self.progress = cache_dir, progress
        self.reference: SWDReference | None = None

    def __call__(self, generator: Callable) -> dict[str, float]:
        if self.reference is None:
            self.reference = swd_reference(self.dataset, self.num_samples, self.seed, self.batch_size, self.device,
                                           cache_dir=self.cache_dir, progress=self.progress)  # fmt: skip
        labels = getattr(self.dataset, "labels", None)
        sampler = None
        if getattr(generator, "num_classes", 0) and labels is not None and len(labels):
            sampler = LabelSampler(np.asarray(labels))
        return generator_swd(generator, self.reference, self.num_samples, self.batch_size, self.device,
                             label_sampler=sampler, progress=self.progress)  # fmt: skip


__all__ = [
    "DescriptorAccumulator",
    "GeneratorSWD",
    "SWDDescriptors",
    "SWDReference",
    "dataset_descriptors",
    "generator_descriptors",
    "generator_swd",
    "image_descriptors",
    "laplacian_pyramid",
    "normalize_descriptors",
    "patch_centres",
    "patches_per_image",
    "reference_split",
    "sliced_wasserstein",
    "swd",
    "swd_directions",
    "swd_distance",
    "swd_reference",
    "swd_resolutions",
]

"""Generators to images: batched generation, grids with one class per row, interpolation strips."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from PIL import Image

from maxvit_gan.images import image_grid, quantize_images
from maxvit_gan.sampling.latents import DEFAULT_TRUNCATION_MODE, seed_latents, slerp


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but CUDA is not available (use device=cpu or auto)")
    return dev


@torch.no_grad()
def generate(
    G,
    z: torch.Tensor,
    labels: torch.Tensor | list[int] | None = None,
    truncation_psi: float = 1.0,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Run ``G`` on latents ``z`` (N, z_dim) in batches -> uint8 (N, 3, R, R) on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    dev = next(G.parameters()).device if device is None else resolve_device(device)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if len(labels) != len(z):
            raise ValueError(f"generate: {len(z)} latents but {len(labels)} labels")
    kwargs = {} if truncation_psi == 1.0 else {"truncation_psi": float(truncation_psi)}
    out = []
    for i in range(0, len(z), batch_size):
        zb = z[i : i + batch_size].to(dev)
        cb = labels[i : i + batch_size].to(dev) if labels is not None else None
        out.append(quantize_images(G(zb, cb, **kwargs)).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, G.resolution, G.resolution, dtype=torch.uint8)


def generate_images(
    G,
    seeds: list[int],
    labels: list[int] | None = None,
    truncation: float | None = None,
    truncation_mode: str = DEFAULT_TRUNCATION_MODE,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """One image per seed (with ``labels[i]`` for a conditional G) -> uint8 (N, 3, R, R)."""
    z = seed_latents(seeds, G.z_dim, truncation, truncation_mode)
    psi = truncation if (truncation is not None and truncation_mode == "mean") else 1.0
    return generate(G, z, labels, psi, batch_size, device)


def grid_shape(n: int, rows: int | None = None) -> tuple[int, int]:
    """(rows, cols) for ``n`` images: given rows, or a square-ish grid (cols = ceil(sqrt(n)))."""
    if n < 1:
        raise ValueError("seeds: nothing to draw")
    if rows is not None:
        if rows < 1:
            raise ValueError(f"rows: must be >= 1, got {rows}")
        rows = min(rows, n)
        return rows, math.ceil(n / rows)
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def grid_labels(n: int, cols: int, classes: list[int] | None) -> list[int] | None:
    """Label of each grid cell, row-major: row r shows class ``classes[r % len(classes)]``
    (the training grids' convention)."""
    if classes is None:
        return None
    return [classes[(i // cols) % len(classes)] for i in range(n)]


def _fill(images: torch.Tensor, n: int) -> torch.Tensor:
    """Pad with white cells up to ``n`` images."""
    if len(images) == n:
        return images
    blank = torch.full((n - len(images), *images.shape[1:]), 255, dtype=torch.uint8)
    return torch.cat([images, blank])


@dataclass
class Samples:
    image: Image.Image  # the grid
    images: torch.Tensor  # uint8 (N, 3, R, R), one per seed (interpolation: N strips x steps frames)
    seeds: list[int]
    labels: list[int] | None  # class per image (per strip when interpolating); None if unconditional
    rows: int
    cols: int


def sample_grid(
    G,
    seeds: list[int],
    classes: list[int] | None = None,
    rows: int | None = None,
    truncation: float | None = None,
    truncation_mode: str = DEFAULT_TRUNCATION_MODE,
    batch_size: int = 32,
    pad: int = 0,
    device: str | torch.device | None = None,
) -> Samples:
    """Grid of one image per seed, row-major; conditional G: one class per row (cycling through
    ``classes``, default all). Cells past the last seed are white."""
    if G.num_classes and classes is None:
        classes = list(range(G.num_classes))
    if not G.num_classes:
        classes = None
    r, c = grid_shape(len(seeds), rows)
    labels = grid_labels(len(seeds), c, classes)
    images = generate_images(G, seeds, labels, truncation, truncation_mode, batch_size, device)
    return Samples(image_grid(_fill(images, r * c), r, c, pad), images, list(seeds), labels, r, c)


def sample_interpolations(
    G,
    seeds: list[int],
    steps: int = 8,
    classes: list[int] | None = None,
    truncation: float | None = None,
    truncation_mode: str = DEFAULT_TRUNCATION_MODE,
    batch_size: int = 32,
    pad: int = 0,
    device: str | torch.device | None = None,
) -> Samples:
    """One row per consecutive seed pair: ``steps`` frames slerping from seed a's latent to seed b's
    (both ends included; the ends equal the seeds' own images). Conditional G: strip j shows class
    ``classes[j % len(classes)]``. ``images`` is (pairs * steps, 3, R, R)."""
    if len(seeds) < 2:
        raise ValueError(f"seeds: interpolation needs at least 2 seeds, got {seeds}")
    if steps < 2:
        raise ValueError(f"steps: interpolation needs at least 2 frames, got {steps}")
    if G.num_classes and classes is None:
        classes = list(range(G.num_classes))
    if not G.num_classes:
        classes = None
    ends = seed_latents(seeds, G.z_dim, truncation, truncation_mode)
    t = torch.linspace(0, 1, steps)
    z = torch.cat([slerp(ends[j], ends[j + 1], t) for j in range(len(seeds) - 1)])  # (pairs * steps, D)
    z[::steps], z[steps - 1 :: steps] = ends[:-1], ends[1:]  # exact ends
    strip_labels = [classes[j % len(classes)] for j in range(len(seeds) - 1)] if classes else None
    labels = [c for c in strip_labels for _ in range(steps)] if strip_labels else None
    psi = truncation if (truncation is not None and truncation_mode == "mean") else 1.0
    images = generate(G, z, labels, psi, batch_size, device)
    rows = len(seeds) - 1
    return Samples(image_grid(images, rows, steps, pad), images, list(seeds), strip_labels, rows, steps)

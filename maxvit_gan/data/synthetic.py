"""`ShapesDataset`: the embedded default dataset. Procedural, no files.

Image `i` shows one bold, flat-coloured shape of class `i % num_classes` (circle,
square, triangle, cross, ring, star) on a pale or dark, low-contrast background (a
smooth two-tone gradient, sometimes with faint stripes). Everything random about
image `i` (colour, background, position, size, rotation) comes from a numpy
Generator seeded by `(seed, i)`, so an index always gives the same image, in any
process, at any time.

It is meant to be learnable in minutes by a tiny GAN at 32 px on a CPU: the shape
covers 40-70% of the image side, colours come from a small saturated palette,
backgrounds are simple, and variation is limited (position jitter, scale, +-25
degrees rotation). The shapes are drawn with signed distance functions on a pixel
grid and antialiased analytically (coverage = clamp(0.5 - distance / pixel, 0, 1)),
so rendering is a few vectorised numpy operations per image (tens of thousands of
images/s at 32 px on one core); `supersample=s` renders at s x R and box-filters
down for slightly smoother edges.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ShapesDataset", "SHAPE_NAMES"]

# Bump when the rendering changes: it is part of `content_hash`, so cached FID
# reference statistics of an older rendering are not reused.
SHAPES_VERSION = 1

SHAPE_NAMES = ("circle", "square", "triangle", "cross", "ring", "star")

# Bold, saturated shape colours (RGB).
_SHAPE_COLOURS = np.array(
    [
        [225, 35, 35],  # red
        [250, 135, 0],  # orange
        [25, 165, 50],  # green
        [35, 80, 225],  # blue
        [150, 45, 210],  # purple
        [225, 30, 165],  # magenta
    ],
    dtype=np.float32,
)

# Backgrounds: pairs of close shades (gradient end points), low contrast.
_BACKGROUNDS = np.array(
    [
        [[228, 232, 242], [192, 202, 222]],  # pale blue-grey
        [[238, 228, 208], [208, 194, 168]],  # sand
        [[214, 236, 218], [178, 208, 188]],  # mint
        [[62, 66, 80], [36, 40, 52]],  # dark slate
    ],
    dtype=np.float32,
)

_SQUARE_HALF_SIDE = 0.82
_TRIANGLE_INRADIUS = 0.58  # circumradius 1.16
_CROSS_HALF_WIDTH = 0.34
_RING_RADIUS, _RING_HALF_WIDTH = 0.76, 0.24
_STAR_OUTER, _STAR_INNER = 1.12, 0.52


def _sdf(cls: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to shape `cls` of unit size, image axes (y down)."""
    if cls == 0:  # circle
        return np.sqrt(x * x + y * y) - 1.0
    if cls == 1:  # square
        return np.maximum(np.abs(x), np.abs(y)) - _SQUARE_HALF_SIDE
    if cls == 2:  # equilateral triangle, apex up, centroid at the origin
        down = y
        right = 0.8660254 * x - 0.5 * y
        left = -0.8660254 * x - 0.5 * y
        return np.maximum(np.maximum(down, right), left) - _TRIANGLE_INRADIUS
    if cls == 3:  # plus-shaped cross
        ax, ay = np.abs(x), np.abs(y)
        horizontal = np.maximum(ax - 1.0, ay - _CROSS_HALF_WIDTH)
        vertical = np.maximum(ax - _CROSS_HALF_WIDTH, ay - 1.0)
        return np.minimum(horizontal, vertical)
    if cls == 4:  # ring
        return np.abs(np.sqrt(x * x + y * y) - _RING_RADIUS) - _RING_HALF_WIDTH
    if cls == 5:  # five-pointed star, one tip up
        # Fold the plane into one half-spike: angle a in [0, pi/5] from a tip direction,
        # where the boundary is the segment tip A=(Ro, 0) -> inner vertex B.
        sector = 2 * np.pi / 5
        phi = np.arctan2(y, x) + np.pi / 2  # 0 at the upward tip
        a = np.abs(np.mod(phi + sector / 2, sector) - sector / 2)
        r = np.sqrt(x * x + y * y)
        qx, qy = r * np.cos(a), r * np.sin(a)
        ax_, bx, by = _STAR_OUTER, _STAR_INNER * np.cos(np.pi / 5), _STAR_INNER * np.sin(np.pi / 5)
        ex, ey = bx - ax_, by
        t = np.clip(((qx - ax_) * ex + qy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dist = np.sqrt((qx - ax_ - t * ex) ** 2 + (qy - t * ey) ** 2)
        inside = ex * qy - ey * (qx - ax_) > 0
        return np.where(inside, -dist, dist)
    raise ValueError(f"unknown shape class {cls}")


class ShapesDataset(Dataset):
    """Procedural coloured shapes; `__getitem__(i) -> (uint8 [3,R,R], int64 label)`.

    Args:
        resolution: image side R in pixels (any value >= 8).
        num_images: length of the dataset (one epoch).
        num_classes: number of shape classes, 1..6 (circle, square, triangle, cross,
            ring, star, in that order). Image i has class i % num_classes.
        seed: dataset seed; image i depends on (seed, i) only.
        conditional: return class labels (else label 0 and `num_classes == 0`; the
            images still show all `num_classes` shapes).
        supersample: render at `supersample * R` and box-filter down (1 = analytic
            antialiasing only, already smooth).
    """

    def __init__(
        self,
        resolution: int = 32,
        num_images: int = 50000,
        num_classes: int = 4,
        seed: int = 0,
        conditional: bool = True,
        supersample: int = 1,
    ):
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {resolution}")
        if not 1 <= num_classes <= len(SHAPE_NAMES):
            raise ValueError(f"num_classes must be in 1..{len(SHAPE_NAMES)}, got {num_classes}")
        if num_images <= 0:
            raise ValueError(f"num_images must be positive, got {num_images}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.resolution = int(resolution)
        self.num_images = int(num_images)
        self.shape_classes = int(num_classes)
        self.seed = int(seed)
        self.conditional = bool(conditional)
        self.supersample = int(supersample)
        self.num_classes = self.shape_classes if conditional else 0
        self.class_names = list(SHAPE_NAMES[: self.shape_classes]) if conditional else []
        self.name = f"shapes{self.shape_classes}"
        self.num_skipped = 0  # interface parity with the file datasets
        if conditional:
            self.labels = np.arange(self.num_images, dtype=np.int64) % self.shape_classes
        else:
            self.labels = np.zeros(self.num_images, dtype=np.int64)
        n = self.resolution * self.supersample
        # Pixel centres in [-1, 1] (1D: every field below is separable in x and y).
        self._coords = (np.arange(n, dtype=np.float32) + 0.5) * np.float32(2.0 / n) - np.float32(1.0)
        self._pixel = 2.0 / n

    def __len__(self) -> int:
        return self.num_images

    @property
    def content_hash(self) -> str:
        """Identifies the images (not the resolution): for caching reference statistics."""
        key = f"shapes-v{SHAPES_VERSION}-k{self.shape_classes}-n{self.num_images}-seed{self.seed}"
        key += f"-ss{self.supersample}-cond{int(self.conditional)}"
        return hashlib.sha256(key.encode()).hexdigest()

    def shape_class(self, index: int) -> int:
        return index % self.shape_classes

    def render(self, index: int) -> np.ndarray:
        """Image `index` as a (R, R, 3) uint8 array."""
        return self._render_chw(index).transpose(1, 2, 0)

    def _render_chw(self, index: int) -> np.ndarray:
        """Image `index` as a contiguous (3, R, R) uint8 array."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        u = np.random.default_rng((self.seed, index)).random(12).tolist()
        cls = self.shape_class(index)
        c = self._coords  # x varies along the last axis, y along the first

        # Background: gradient between two close shades, optional faint stripes.
        bg = _BACKGROUNDS[int(u[0] * len(_BACKGROUNDS))]
        if u[11] < 0.5:
            bg = bg[::-1]
        ang = u[1] * 2 * math.pi
        t = (c * (0.5 * math.cos(ang)))[None, :] + (c * (0.5 * math.sin(ang)) + 0.5)[:, None]
        if u[2] < 0.5:  # stripes: sin(kx*x + ky*y + phase), expanded into separable terms
            sang, freq = u[3] * math.pi, 2.0 + 3.0 * u[4]  # freq: periods per image side
            k = math.pi * freq
            px = c * (k * math.cos(sang)) + u[5] * 2 * math.pi
            py = c * (k * math.sin(sang))
            t += 0.12 * (
                np.sin(px)[None, :] * np.cos(py)[:, None] + np.cos(px)[None, :] * np.sin(py)[:, None]
            )
        bg0 = bg[0][:, None, None]
        img = bg0 + (bg[1] - bg[0])[:, None, None] * t

        # Shape: size (half extent in [-1,1] units = fraction of the side), jitter, rotation.
        size = 0.48 + 0.22 * u[6]
        cx, cy = (u[7] - 0.5) * 0.3, (u[8] - 0.5) * 0.3
        theta = (u[9] - 0.5) * math.radians(30.0)
        cos_s, sin_s = math.cos(theta) / size, math.sin(theta) / size
        xs, ys = c - cx, c - cy
        lx = (xs * cos_s)[None, :] + (ys * sin_s)[:, None]  # shape-local coordinates
        ly = (xs * -sin_s)[None, :] + (ys * cos_s)[:, None]
        # Coverage = clamp(0.5 - distance / pixel); distance = sdf * size in image units.
        alpha = _sdf(cls, lx, ly)
        alpha *= np.float32(-size / self._pixel)
        alpha += np.float32(0.5)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        colour = _SHAPE_COLOURS[int(u[10] * len(_SHAPE_COLOURS))][:, None, None]
        img += (colour - img) * alpha
        if self.supersample > 1:
            r, s = self.resolution, self.supersample
            img = img.reshape(3, r, s, r, s).mean(axis=(2, 4))
        img += np.float32(0.5)  # round; img is a convex mix of colours in [0, 255]
        return img.astype(np.uint8)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        if index < 0:
            index += self.num_images
        image = torch.from_numpy(self._render_chw(index))
        return image, torch.tensor(int(self.labels[index]), dtype=torch.int64)

    def __repr__(self) -> str:
        return (
            f"ShapesDataset(resolution={self.resolution}, num_images={self.num_images}, "
            f"num_classes={self.shape_classes}, seed={self.seed}, conditional={self.conditional})"
        )

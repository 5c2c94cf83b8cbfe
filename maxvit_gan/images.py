"""Image tensors to pixels: the one quantisation (shared by sampling, training grids and FID) and grids.

No model, training or metric code here: every layer may import it.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def quantize_images(x: torch.Tensor) -> torch.Tensor:
    """Generator output (B, 3, H, W) in [-1, 1] -> uint8, as every FID codebase does:
    ``(x * 127.5 + 128).clamp(0, 255)`` truncated to integers."""
    return (x.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, rows: int, cols: int, pad: int = 0) -> Image.Image:
    """Tile ``rows * cols`` images (uint8 or float in [-1, 1], (N, 3, H, W)) row-major into one PIL image."""
    if images.dtype != torch.uint8:
        images = quantize_images(images)
    n, c, h, w = images.shape
    if n != rows * cols:
        raise ValueError(f"image_grid: {n} images do not fill a {rows} x {cols} grid")
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        canvas[y : y + h, x : x + w] = arr[i]
    return Image.fromarray(canvas)

"""Image preprocessing shared by the folder dataset and `prepare_dataset.py`.

`center_crop_arr` is the ADM (guided-diffusion) preprocessing that ImageNet FID
references are computed with: halve the image with a box filter while its short
side is at least twice the target, resize the short side to the target with
bicubic, then take the central square.

`to_rgb` turns any PIL mode into 8-bit RGB. Transparent images are composited on
white (``alpha="white"``, the default) so that transparent regions look like what a
viewer shows; ``alpha="drop"`` throws the alpha channel away instead, which is what
ADM and StyleGAN's dataset_tool do (`Image.convert("RGB")`). ImageNet JPEGs carry no
alpha, so the choice does not change ImageNet statistics.
EXIF orientation is not applied (neither ADM nor StyleGAN applies it).

No random flips here: the training step flips, seeded, for an exact resume.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["center_crop_arr", "to_rgb", "load_rgb"]


def to_rgb(img: Image.Image, alpha: str = "white") -> Image.Image:
    """Return `img` as an 8-bit RGB image.

    Handles L/1/P (grayscale, bilevel, palette), CMYK, YCbCr, 16-bit and float
    grayscale (I;16, I, F: rescaled to 0..255), and alpha (LA, RGBA, PA, P with
    transparency): composited on white (`alpha="white"`) or dropped (`"drop"`).
    """
    if alpha not in ("white", "drop"):
        raise ValueError(f"alpha must be 'white' or 'drop', got {alpha!r}")
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.size and arr.max() > 255:  # 16-bit range
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        if alpha == "drop":
            return rgba.convert("RGB")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def center_crop_arr(pil_image: Image.Image, image_size: int) -> np.ndarray:
    """ADM preprocessing: box-halve, bicubic resize of the short side, center crop.

    Returns a `(image_size, image_size, C)` uint8 array (C from the image's mode;
    call `to_rgb` first for RGB). Smaller images are upsampled with bicubic.
    """
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    img = pil_image
    # Repeated 2x box downsampling first: bicubic alone would alias on big reductions.
    while min(img.size) >= 2 * image_size:
        img = img.resize((img.size[0] // 2, img.size[1] // 2), resample=Image.BOX)
    scale = image_size / min(img.size)
    new_size = (round(img.size[0] * scale), round(img.size[1] * scale))
    img = img.resize(new_size, resample=Image.BICUBIC)
    arr = np.asarray(img)
    top = (arr.shape[0] - image_size) // 2
    left = (arr.shape[1] - image_size) // 2
    return np.array(arr[top : top + image_size, left : left + image_size], order="C")  # writable copy


def load_rgb(path_or_file, image_size: int, alpha: str = "white") -> np.ndarray:
    """Open an image (path or file object), convert to RGB and `center_crop_arr` it.

    Raises whatever PIL raises for an unreadable or truncated file (the full image
    is decoded here, so truncation is detected now, not later).
    """
    with Image.open(path_or_file) as img:
        img.load()
        rgb = to_rgb(img, alpha=alpha)
    return center_crop_arr(rgb, image_size)

"""Loading speed: prepared zip vs. a JPEG image folder, through a torch DataLoader.

    PYTHONPATH=. python benchmarks/data_loading.py --num-images 500 --resolution 128 --workers 2

Generates `num-images` natural-looking JPEGs (1/f-spectrum colour noise, 500x375,
quality 90, 10 class folders), prepares them with `prepare_dataset` into a zip
at `resolution` (PNG compress level 0, the default, and 6), then times `--repeats` epochs
(median; after a warm-up epoch, persistent workers) of:
  - ImageFolderDataset over the JPEGs (decode + ADM crop/resize per item),
  - ZipDataset over each zip (PNG decode per item),
  - ZipDataset(in_memory=True) (no decoding per item).
All files are in the page cache (just written), so this measures CPU cost, not disk.
Also reports the mean PNG bytes per image at each compress level.
Prints a markdown table and writes JSON: benchmarks/out/data_loading_w<workers>.json
(git-ignored) by default, `--out PATH` elsewhere, `--write` to the committed
benchmarks/results/data_loading_w<workers>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import OUT_DIR, RESULTS_DIR  # noqa: E402

from maxvit_gan.data import ImageFolderDataset, ShapesDataset, ZipDataset  # noqa: E402
from maxvit_gan.data.prepare import prepare_dataset  # noqa: E402


def natural_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Colour noise with a 1/f amplitude spectrum (like natural photos), 8-bit RGB."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = 1.0 / f**1.1
    amp[0, 0] = 0.0
    base = np.fft.irfft2(amp * np.exp(2j * np.pi * rng.random(amp.shape)), s=(height, width))
    chans = []
    for _ in range(3):  # correlated channels: shared structure + a little of their own
        own = np.fft.irfft2(amp * np.exp(2j * np.pi * rng.random(amp.shape)), s=(height, width))
        chans.append(base + 0.35 * own)
    img = np.stack(chans, -1)
    img = (img - img.mean()) / (img.std() + 1e-8)
    img = 128 + 48 * img + rng.normal(0, 40, 3)  # per-image colour cast
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def make_jpegs(root: str, n: int, size: tuple[int, int], seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    total = 0
    for k in range(n):
        d = os.path.join(root, f"class{k % 10:02d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"img{k:05d}.jpg")
        natural_image(rng, *size).save(path, quality=90)
        total += os.path.getsize(path)
    return total / n


def time_loader(ds, batch_size: int, workers: int, repeats: int) -> float:
    """Median img/s over `repeats` epochs, after a warm-up epoch (worker start, imports)."""
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    for _ in loader:
        pass
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        count = sum(images.shape[0] for images, _ in loader)
        rates.append(count / (time.perf_counter() - t0))
    return float(np.median(rates))


def shapes_rate(resolution: int, n: int = 3000) -> float:
    """ShapesDataset __getitem__ img/s in this process (one core), 4 classes."""
    ds = ShapesDataset(resolution=resolution, num_images=n, num_classes=4)
    ds[0]
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - t0)


def mean_png_bytes(path: str) -> float:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        sizes = [i.file_size for i in zf.infolist() if i.filename.endswith(".png")]
    return float(np.mean(sizes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-images", type=int, default=500)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (and preparation processes)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per dataset (median reported)")
    ap.add_argument("--src-size", default="500x375", help="JPEG size WxH")
    ap.add_argument("--workdir", default=None, help="where to write the images (default: a temp dir)")
    ap.add_argument("--out", default=None, help="JSON path (default: benchmarks/out/data_loading_w<workers>.json)")
    ap.add_argument(
        "--write", action="store_true", help="write the committed benchmarks/results/data_loading_w<workers>.json"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.src_size.split("x"))

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src = os.path.join(tmp, "jpeg")
        t0 = time.perf_counter()
        jpeg_bytes = make_jpegs(src, args.num_images, (w, h))
        print(
            f"generated {args.num_images} JPEGs {w}x{h} ({jpeg_bytes / 1e3:.1f} kB each) "
            f"in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        zips = {}
        prep_rate = {}
        for level in (0, 6):
            path = os.path.join(tmp, f"prepared_l{level}.zip")
            t0 = time.perf_counter()
            prepare_dataset(
                src, path, args.resolution, workers=args.workers, compress_level=level, progress=False
            )
            prep_rate[level] = args.num_images / (time.perf_counter() - t0)
            zips[level] = path

        rows = []
        folder = ImageFolderDataset(src, args.resolution)
        rows.append(
            (
                "ImageFolderDataset (JPEG 500x375 -> crop)",
                time_loader(folder, args.batch_size, args.workers, args.repeats),
            )
        )
        for level, path in zips.items():
            rate = time_loader(ZipDataset(path, args.resolution), args.batch_size, args.workers, args.repeats)
            rows.append((f"ZipDataset (PNG level {level})", rate))
        mem = ZipDataset(zips[0], args.resolution, in_memory=True)
        rows.append(("ZipDataset in_memory", time_loader(mem, args.batch_size, args.workers, args.repeats)))
        png_bytes = {level: mean_png_bytes(p) for level, p in zips.items()}

    shapes = {r: shapes_rate(r, 3000 if r <= 32 else 500) for r in (32, 128)}
    base = rows[0][1]
    header = (
        f"Data loading, {args.num_images} images at {args.resolution} px, batch {args.batch_size}, "
        f"{args.workers} DataLoader workers; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    lines = [header, "", "| dataset | img/s | vs folder |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:,.0f} | {rate / base:.1f}x |" for name, rate in rows]
    lines += [
        "",
        f"PNG bytes/image at {args.resolution} px: level 0 = {png_bytes[0]:,.0f}, level 6 = {png_bytes[6]:,.0f} "
        f"({png_bytes[6] / png_bytes[0]:.0%}); source JPEG {jpeg_bytes:,.0f} bytes/image",
        f"prepare_dataset throughput ({args.workers} workers): level 0 {prep_rate[0]:,.0f} img/s, "
        f"level 6 {prep_rate[6]:,.0f} img/s",
        f"ShapesDataset (one core, no DataLoader): {shapes[32]:,.0f} img/s at 32 px, "
        f"{shapes[128]:,.0f} img/s at 128 px",
    ]
    print("\n".join(lines))
    result = {
        "num_images": args.num_images,
        "resolution": args.resolution,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "src_size": [w, h],
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "img_per_s": {name: rate for name, rate in rows},
        "zip_over_folder": rows[1][1] / base,
        "png_bytes_per_image": {f"level{k}": v for k, v in png_bytes.items()},
        "jpeg_bytes_per_image": jpeg_bytes,
        "prepare_img_per_s": {f"level{k}": v for k, v in prep_rate.items()},
        "shapes_img_per_s": {f"{k}px": v for k, v in shapes.items()},
    }
    name = f"data_loading_w{args.workers}.json"
    paths = [args.out or str(OUT_DIR / name)] + ([str(RESULTS_DIR / name)] if args.write else [])
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

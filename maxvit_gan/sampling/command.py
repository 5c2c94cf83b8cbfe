"""What ``maxvit-gan sample`` does, as a function of a :class:`maxvit_gan.config.SampleConfig`."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from maxvit_gan.images import image_grid
from maxvit_gan.loading import class_names, load_generator
from maxvit_gan.sampling.generate import resolve_device, sample_grid, sample_interpolations
from maxvit_gan.sampling.latents import check_truncation
from maxvit_gan.sampling.parse import parse_classes, parse_seeds


def run_sample(cfg) -> list[Path]:
    """Everything ``maxvit-gan sample`` does, from a :class:`maxvit_gan.config.SampleConfig`.
    Returns the written paths."""
    seeds = parse_seeds(cfg.seeds)
    check_truncation(cfg.truncation, cfg.truncation_mode)
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {cfg.batch_size}")
    if cfg.pad < 0:
        raise ValueError(f"pad: must be >= 0, got {cfg.pad}")
    device = resolve_device(cfg.device)
    G = load_generator(cfg.run, cfg.checkpoint, device)
    names = (getattr(G, "metadata", {}).get("class_names") or class_names(cfg.run)) if G.num_classes else None
    if names is not None and len(names) != G.num_classes:
        names = None
    classes = parse_classes(cfg.classes, G.num_classes, names)
    common = dict(
        truncation=cfg.truncation, truncation_mode=cfg.truncation_mode, batch_size=cfg.batch_size, pad=cfg.pad
    )
    if cfg.interpolate:
        result = sample_interpolations(G, seeds, cfg.steps, classes, **common)
    else:
        result = sample_grid(G, seeds, classes, cfg.rows, **common)

    written = []
    if cfg.outdir:
        outdir = Path(cfg.outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        if cfg.interpolate:
            frames = result.images.view(result.rows, cfg.steps, *result.images.shape[1:])
            for j in range(result.rows):
                name = f"interp-seed{seeds[j]:04d}-seed{seeds[j + 1]:04d}"
                if result.labels is not None:
                    name += f"-class{result.labels[j]:03d}"
                written.append(
                    _save(image_grid(frames[j], 1, cfg.steps, cfg.pad), outdir / f"{name}.png", "outdir")
                )
        else:
            for i, s in enumerate(seeds):
                name = f"seed{s:04d}" + (f"-class{result.labels[i]:03d}" if result.labels is not None else "")
                written.append(
                    _save(image_grid(result.images[i : i + 1], 1, 1), outdir / f"{name}.png", "outdir")
                )
    else:
        out = Path(cfg.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        written.append(_save(result.image, out, "out"))
    if result.labels is not None:
        row_classes = (
            result.labels if cfg.interpolate else [result.labels[r * result.cols] for r in range(result.rows)]
        )
        legend = [
            f"row {r}: class {c}" + (f" ({names[c]})" if names else "") for r, c in enumerate(row_classes)
        ]
        print(", ".join(legend[:16]) + (", ..." if len(legend) > 16 else ""))
    return written


def _save(image: Image.Image, path: Path, key: str) -> Path:
    try:
        image.save(path)
    except (ValueError, KeyError) as err:  # PIL: unknown extension
        raise ValueError(f"{key}: cannot write {path}: {err} (use a .png file name)") from None
    return path

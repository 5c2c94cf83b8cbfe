"""From seeds to pictures: latents, truncation, grids, interpolation, and `scripts/sample.py`'s logic.

Reproducibility: seed ``s`` always gives the same latent, ``torch.Generator().manual_seed(s)``
drawn alone, so an image depends on its seed (and class), never on the other seeds, the
order, the batch size or the device the latent is drawn for (latents are drawn on the CPU).

Truncation (``psi``), two modes:

* ``truncnorm`` (HiT / BigGAN): each latent component with ``|z_i| > psi`` is redrawn until it
  lies in ``[-psi, psi]``: z follows a truncated normal. The generator normalises z by its
  second moment first, so this truncates the *direction* of z only (no outlying components),
  not its length: it is a mild truncation, and variety does not vanish as psi -> 0.
  ``psi = 0`` is defined as z = 0, the average image (as in ``mean`` mode).
* ``mean`` (StyleGAN's trick): the normalised latent is scaled by psi, i.e. moved towards its
  mean 0. The generator reads it only through linear layers, so this interpolates the 8x8
  input map and the latent tokens towards their average over z; class tokens are untouched.
  psi = 1: no change, psi = 0: one image per class. Scaling *raw* z would do nothing here
  (the normalisation undoes it), which is why the scaling happens inside the generator.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TRUNCATION_MODES = ("truncnorm", "mean")
CHECKPOINT_EMA_FILE = "ema.safetensors"  # the EMA state dict in checkpoints/step-N (training.checkpoint)
_CHECKPOINT_RE = re.compile(r"^step-(\d+)$")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> uint8, the same quantisation FID uses: (x * 127.5 + 128) clamped."""
    return (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def image_grid(images: torch.Tensor, rows: int, cols: int, pad: int = 0) -> Image.Image:
    """Tile ``rows * cols`` images (uint8 or float in [-1, 1], (N, 3, H, W)) row-major into one PIL image."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
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


# --------------------------------------------------------------------------- parsing


def _parse_int_list(spec, key: str, names: list[str] | None = None) -> list[int]:
    """``5``, ``"0-63"``, ``"0,5,7"``, ``"[1,2]"``, ``[0, "3-5"]``, ``"0-3,10"`` -> list of ints."""
    hint = "expected e.g. 5, 0-63, 0,5,7, [0,5,7] or 0-3,10"
    if names:
        hint += f", or class names ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
    if isinstance(spec, bool) or spec is None:
        raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    if isinstance(spec, int):
        parts = [spec]
    elif isinstance(spec, (list, tuple)):
        parts = list(spec)
    elif isinstance(spec, str):
        s = spec.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        parts = [p.strip().strip("'\"") for p in s.split(",")]
    else:
        raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    out: list[int] = []
    for p in parts:
        if isinstance(p, bool):
            raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
        if isinstance(p, int):
            out.append(p)
            continue
        p = str(p).strip()
        if names and p in names:
            out.append(names.index(p))
        elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", p):
            a, b = int(m.group(1)), int(m.group(2))
            if a > b:
                raise ValueError(f"{key}: empty range {p!r} in {spec!r} (start > end)")
            out.extend(range(a, b + 1))
        elif re.fullmatch(r"[+-]?\d+", p):
            out.append(int(p))
        else:
            raise ValueError(f"{key}: cannot parse {spec!r} ({hint})")
    if not out:
        raise ValueError(f"{key}: {spec!r} selects nothing ({hint})")
    return out


def parse_seeds(spec) -> list[int]:
    """Seeds from ``5``, ``"0-63"``, ``"0,5,7"``, ``"[1,2]"``, ``[1, 2]`` or mixes like ``"0-3,10"``."""
    seeds = _parse_int_list(spec, "seeds")
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise ValueError(f"seeds: must be non-negative integers < 2**63, got {bad[:5]}")
    return seeds


def parse_classes(spec, num_classes: int, class_names: list[str] | None = None) -> list[int] | None:
    """Class indices for a model with ``num_classes`` classes; None (all classes) for ``spec=None``.
    Unconditional models: None, and an error if classes were asked for."""
    if num_classes <= 0:
        if spec is not None:
            raise ValueError(f"classes: the generator is unconditional; got classes={spec!r}")
        return None
    if spec is None:
        return list(range(num_classes))
    classes = _parse_int_list(spec, "classes", class_names)
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(
            f"classes: {bad[:5]} out of range: the generator has {num_classes} classes (0..{num_classes - 1})"
        )
    return classes


# --------------------------------------------------------------------------- latents


def _check_truncation(truncation: float | None, mode: str) -> None:
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation_mode: unknown {mode!r} (expected one of {', '.join(TRUNCATION_MODES)})")
    if truncation is not None and not (truncation >= 0 and math.isfinite(truncation)):
        raise ValueError(f"truncation: must be a finite number >= 0 (or null for none), got {truncation!r}")


def truncated_normal(n: int, psi: float, gen: torch.Generator, max_rounds: int = 100) -> torch.Tensor:
    """``n`` standard normals restricted to ``[-psi, psi]``, redrawing the values outside.

    After ``max_rounds`` the few values still outside (only for tiny psi) are drawn exactly by
    the inverse CDF instead, so the time is bounded; the distribution is the same.
    psi = 0 gives zeros.
    """
    if psi == 0:
        return torch.zeros(n)
    z = torch.randn(n, generator=gen)
    for _ in range(max_rounds):
        bad = z.abs() > psi
        k = int(bad.sum())
        if k == 0:
            return z
        z[bad] = torch.randn(k, generator=gen)
    bad = z.abs() > psi
    if bad.any():
        lo = 0.5 * math.erfc(psi / math.sqrt(2))  # Phi(-psi)
        u = torch.rand(int(bad.sum()), generator=gen, dtype=torch.float64)
        z[bad] = torch.special.ndtri(lo + u * (1 - 2 * lo)).float().clamp(-psi, psi)
    return z


def seed_latents(
    seeds: list[int], z_dim: int, truncation: float | None = None, truncation_mode: str = "truncnorm"
) -> torch.Tensor:
    """(len(seeds), z_dim) float32 on the CPU; row i depends on ``seeds[i]`` (and psi) only.
    In ``mean`` mode z is not truncated here (the generator applies psi)."""
    _check_truncation(truncation, truncation_mode)
    rows = []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        if truncation is not None and truncation_mode == "truncnorm":
            rows.append(truncated_normal(z_dim, float(truncation), gen))
        else:
            rows.append(torch.randn(z_dim, generator=gen))
    return torch.stack(rows) if rows else torch.zeros(0, z_dim)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between latents ``a`` and ``b`` (..., D) at ``t`` in [0, 1]: constant
    angular speed, the natural path for a generator that only sees the direction of z. Lengths
    are interpolated linearly. Falls back to lerp for (nearly) parallel vectors."""
    t = torch.as_tensor(t, dtype=a.dtype)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    tt = t.reshape(-1, *([1] * a.dim())) if t.dim() else t  # (T, ..., 1) for a vector of t
    direction = torch.where(
        so > 1e-6,
        (torch.sin((1 - tt) * omega) * ua + torch.sin(tt * omega) * ub) / so.clamp_min(1e-6),
        (1 - tt) * ua + tt * ub,
    )
    return direction * ((1 - tt) * na + tt * nb)


# --------------------------------------------------------------------------- generation


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
        out.append(to_uint8(G(zb, cb, **kwargs)).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, G.resolution, G.resolution, dtype=torch.uint8)


def generate_images(
    G,
    seeds: list[int],
    labels: list[int] | None = None,
    truncation: float | None = None,
    truncation_mode: str = "truncnorm",
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
    (the training snapshots' convention)."""
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
    truncation_mode: str = "truncnorm",
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
    truncation_mode: str = "truncnorm",
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


# --------------------------------------------------------------------------- loading a run


def _latest_checkpoint(run: Path) -> Path | None:
    root = run / "checkpoints"
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()
    ]
    return max(found)[1] if found else None


def run_class_names(run: str | os.PathLike | None) -> list[str] | None:
    """Class names of a run or exported model, when they can be known cheaply: the metadata of a
    save_pretrained folder, else the run's ``config_resolved.yaml`` (shapes: shape names; zip:
    its dataset.json). None when unknown."""
    if run is None:
        return None
    from maxvit_gan.models.pretrained import read_metadata

    run = Path(run)
    names = read_metadata(run).get("class_names")
    if names:
        return [str(n) for n in names]
    cfg_file = run / "config_resolved.yaml" if run.is_dir() else None
    if cfg_file is None or not cfg_file.is_file():
        return None
    import yaml

    data = (yaml.safe_load(cfg_file.read_text()) or {}).get("data") or {}
    if not data.get("conditional", True):
        return None
    if data.get("name") == "shapes":
        from maxvit_gan.data.synthetic import SHAPE_NAMES

        return list(SHAPE_NAMES[: int(data.get("shapes_num_classes", 4))])
    if data.get("name") == "zip" and data.get("path") and os.path.isfile(data["path"]):
        import json
        import zipfile

        try:
            with zipfile.ZipFile(data["path"]) as zf:
                meta = json.loads(zf.read("dataset.json"))
            return list(meta.get("class_names") or []) or None
        except (KeyError, ValueError, OSError, zipfile.BadZipFile):
            return None
    return None


def load_sampling_generator(run: str | None = None, checkpoint: str | None = None, device="cpu"):
    """The generator ``sample.py`` draws from: the run's EMA generator, or a checkpoint's EMA
    weights (the architecture then comes from the run's ``generator_ema.safetensors`` metadata,
    unless the checkpoint file describes itself). Errors name the offending key."""
    from safetensors.torch import load_file

    from maxvit_gan.models.pretrained import (
        GENERATOR_FILE,
        PRETRAINED_CONFIG,
        PRETRAINED_WEIGHTS,
        from_pretrained,
        read_generator_metadata,
    )

    run_path = Path(run).expanduser() if run else None
    if run_path is not None:
        if not run_path.exists():
            raise FileNotFoundError(f"run: no such directory or file: {run}")
        if run_path.is_dir() and not (
            (run_path / GENERATOR_FILE).is_file()
            or ((run_path / PRETRAINED_WEIGHTS).is_file() and (run_path / PRETRAINED_CONFIG).is_file())
        ):
            raise FileNotFoundError(
                f"run: {run} holds no generator weights (expected {GENERATOR_FILE}, written at a "
                f"training run's first checkpoint, or {PRETRAINED_WEIGHTS} + {PRETRAINED_CONFIG} from "
                "save_pretrained)"
            )
    if checkpoint is None:
        if run_path is None:
            raise ValueError(
                "run: required (a training run directory, a save_pretrained directory or a .safetensors file)"
            )
        return from_pretrained(run_path, device=device)

    if checkpoint == "latest":
        if run_path is None or run_path.is_file():
            raise ValueError("checkpoint: 'latest' needs run=<run directory>")
        ckpt = _latest_checkpoint(run_path)
        if ckpt is None:
            raise FileNotFoundError(f"checkpoint: no checkpoints/step-* in {run}")
    else:
        ckpt = Path(checkpoint).expanduser()
        if (
            not ckpt.exists()
            and run_path is not None
            and run_path.is_dir()
            and (run_path / checkpoint).exists()
        ):
            ckpt = run_path / checkpoint
        if not ckpt.exists():
            where = f" (nor under run {run})" if run_path is not None else ""
            raise FileNotFoundError(f"checkpoint: no such directory or file: {checkpoint}{where}")
    weights = ckpt / CHECKPOINT_EMA_FILE if ckpt.is_dir() else ckpt
    if not weights.is_file():
        raise FileNotFoundError(
            f"checkpoint: {ckpt} has no {CHECKPOINT_EMA_FILE} (expected a checkpoint directory "
            "checkpoints/step-N or a .safetensors file)"
        )
    if "generator_config" in read_generator_metadata(weights):  # self-describing file
        return from_pretrained(weights, device=device)
    if run_path is None:
        raise ValueError(
            f"run: required with checkpoint={checkpoint} ({weights.name} holds weights only; the "
            f"architecture comes from the run's {GENERATOR_FILE})"
        )
    G = from_pretrained(run_path, device="cpu")
    try:
        G.load_state_dict(load_file(str(weights)))
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint: the weights in {weights} do not fit the generator of run {run}: {err}"
        ) from None
    return G.to(device)


# --------------------------------------------------------------------------- sample.py


def run_sample(cfg) -> list[Path]:
    """Everything ``scripts/sample.py`` does, from a :class:`maxvit_gan.config.SampleConfig`.
    Returns the written paths."""
    seeds = parse_seeds(cfg.seeds)
    _check_truncation(cfg.truncation, cfg.truncation_mode)
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {cfg.batch_size}")
    if cfg.pad < 0:
        raise ValueError(f"pad: must be >= 0, got {cfg.pad}")
    device = resolve_device(cfg.device)
    G = load_sampling_generator(cfg.run, cfg.checkpoint, device)
    names = run_class_names(cfg.run) if G.num_classes else None
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

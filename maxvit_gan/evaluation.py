"""Evaluate as papers do: FID (+ KID, IS, precision/recall) and/or SWD of N samples against a reference.

What is scored (the "fake" side):
  run=...          a generator, from anything ``maxvit_gan.loading.load_generator`` reads: a training
                   run directory (``checkpoint=latest`` / ``checkpoints/step-N`` / a .safetensors for
                   a checkpoint's EMA), a save_pretrained / export folder, a .safetensors file, or a
                   Hugging Face Hub repo id; ``num_samples`` images (default 50,000)
  fake=DIR|ZIP     a folder or zip of images (clean-fid's ``compute_fid(dir1, dir2)``,
                   torch-fidelity's ``--input1 --input2``)
References (``ref=``):
  dataset          statistics of the run's own training data (cached by content hash)
  PATH.npz         an ADM reference batch (VIRTUAL_imagenet{128,256}_labeled.npz), a clean-fid
                   statistics file, or a file written by ``write_ref=``
  PATH (folder/zip) statistics of those images at the fake side's resolution (cached)
  imagenet64/128/256  the ADM reference batch, from metrics.cache_dir (downloaded once if online)
SWD (``metrics.swd=true``; alone with ``metrics.fid=false``, which never builds Inception) needs
reference images: ``ref=dataset`` or a folder / zip; it scores the same N images as FID against
N reference images and reports the real-vs-real floor (``maxvit_gan.metrics.swd``).
Every function here is collective under ``accelerate launch``: call it on every rank.

Checked before the fakes are generated or read (minutes to hours): that ``out`` and
``write_ref`` can be written, and that a reference file is readable, finite and of the feature
network's dimension. A result JSON that still cannot be written at the end raises
:class:`ResultNotWrittenError`, which carries the scores (the command prints them, then the error).
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from maxvit_gan._version import __version__
from maxvit_gan.config import DataConfig, EvaluateConfig
from maxvit_gan.data import build_dataset
from maxvit_gan.files import temp_path, write_text
from maxvit_gan.loading import is_hub_id, load_generator
from maxvit_gan.metrics import (
    LabelSampler,
    build_feature_extractor,
    compute_dataset_stats,
    compute_generator_stats,
    compute_metrics,
    fid_key,
    load_reference,
    reference_stats_for_dataset,
    save_reference,
)
from maxvit_gan.metrics.features import MODES
from maxvit_gan.metrics.reference import default_cache_dir
from maxvit_gan.metrics.swd import (
    DescriptorAccumulator,
    dataset_descriptors,
    default_swd_cache_dir,
    generator_descriptors,
    patches_per_image,
    swd_reference,
    swd_resolutions,
)
from maxvit_gan.rundir import EVAL_DIR, RunDir

ADM_REFS = {
    "imagenet64": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/64/VIRTUAL_imagenet64_labeled.npz",
    "imagenet128": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/128/VIRTUAL_imagenet128_labeled.npz",
    "imagenet256": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz",
}
DEFAULT_NUM_SAMPLES = 50000  # FID50k: the paper protocol


class ResultNotWrittenError(OSError):
    """The evaluation ran but its JSON could not be written; ``.result`` holds the scores."""

    result: dict


def _check_writable(path: Path, key: str) -> None:
    """Before the work: ``path`` can be written (its folder made, a file created in it)."""
    if path.is_dir():
        raise IsADirectoryError(f"{key}: {path} is a directory; give a file name in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = temp_path(path)
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise OSError(f"{key}: cannot write {path} ({type(err).__name__}: {err.strerror or err})") from None


def _adm_reference(name: str, cache_dir: str | None) -> Path:
    url = ADM_REFS[name]
    path = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / os.path.basename(url)
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except Exception as err:
        raise FileNotFoundError(
            f"ref={name}: the ADM reference batch is not in {path.parent} and could not be downloaded "
            f"({type(err).__name__}: {err}). Download {url} on a machine with internet and pass ref=PATH, "
            f"or put it in metrics.cache_dir."
        ) from err
    return path


def images_dataset(path: str | os.PathLike, resolution: int | None, max_images: int | None = None, key: str = "fake"):
    """A folder or zip of images as a dataset of uint8 [3, R, R] (ADM center crop to R; images
    already R x R pass unchanged). ``resolution=None``: the first image's (short) side."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{key}={path}: no such folder or zip")
    name = "zip" if path.is_file() else "folder"
    if resolution is None:
        resolution = _first_image_side(path, key)
    try:
        return build_dataset(DataConfig(name=name, path=str(path), resolution=resolution, conditional=False,
                                        max_images=max_images, num_workers=0))  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{key}={path}: {str(err).removeprefix('data.path: ')}") from None


def _first_image_side(path: Path, key: str) -> int:
    from PIL import Image

    from maxvit_gan.data.datasets import ZipDataset, list_image_files

    if path.is_file():
        return ZipDataset(str(path), resolution=None, use_labels=False).resolution
    files = list_image_files(str(path))
    if not files:
        raise ValueError(f"{key}={path}: no images (.png, .jpg, .jpeg, .webp, .bmp) in the folder")
    with Image.open(path / files[0]) as img:
        return min(img.size)


def _run_data(cfg: EvaluateConfig, generator) -> DataConfig | None:
    """The training data of the generator's run: from a run directory, or from an export's
    metadata. A damaged ``config_resolved.yaml`` is an error only when ``ref=dataset`` needs it."""
    source = cfg.run
    if source is not None and not is_hub_id(source) and RunDir(source).has_config():
        try:
            return RunDir(source).data_config()
        except ValueError as err:
            if cfg.ref == "dataset":
                raise ValueError(f"ref=dataset: the training data is unknown: {err}") from None
            warnings.warn(f"{err}; fake labels are drawn uniformly over the classes", stacklevel=2)
            return None
    data = (getattr(generator, "metadata", None) or {}).get("data")
    return DataConfig(**data) if isinstance(data, dict) else None


def _reference_images(cfg: EvaluateConfig, run_data: DataConfig | None, resolution: int):
    """``ref=dataset`` / a folder / a zip -> (dataset of uint8 images, description); None for a file of statistics."""
    ref = cfg.ref
    if ref in ADM_REFS:
        return None
    if ref == "dataset":
        if run_data is None:
            raise ValueError(
                "ref=dataset: the training data is known only for a training run directory (or an export of "
                "one); give ref=DIR, ref=ZIP, ref=PATH.npz or ref=imagenet128"
            )
        return build_dataset(replace(run_data, num_workers=0)), {"kind": "dataset", "data": asdict(run_data)}
    path = Path(ref).expanduser()
    if path.suffix == ".npz":
        return None
    if not path.exists():
        raise FileNotFoundError(
            f"ref={ref}: not 'dataset', an ImageNet name ({', '.join(ADM_REFS)}), nor an existing folder, zip or .npz"
        )
    return images_dataset(path, resolution, key="ref"), {"kind": "zip" if path.is_file() else "folder", "path": str(path)}


def resolve_reference(cfg: EvaluateConfig, run_data: DataConfig | None, resolution: int, extractor, device,
                      images=False):  # fmt: skip
    """-> (FeatureStats, description of the reference for the JSON). ``images``: ``_reference_images``'s
    result when the caller has it already."""
    ref = cfg.ref
    common = dict(cache_dir=cfg.metrics.cache_dir, batch_size=cfg.batch_size, device=device)
    if ref in ADM_REFS:
        path = _adm_reference(ref, cfg.metrics.cache_dir)
        return _checked_reference(ref, path, extractor, cfg.mode), {"kind": "adm", "name": ref, "path": str(path)}
    images = _reference_images(cfg, run_data, resolution) if images is False else images
    if images is None:
        path = Path(ref).expanduser()
        return _checked_reference(ref, path, extractor, cfg.mode), {"kind": "file", "path": str(path)}
    dataset, info = images
    stats = reference_stats_for_dataset(dataset, extractor, **common)
    return stats, {**info, "n": stats.n, "cache": stats.path}


def _checked_reference(ref: str, path: Path, extractor, mode: str):
    """A file of reference statistics, refused in one line naming ``ref=`` when it is unreadable,
    not finite (a FID of nan) or of another dimension than the feature network's."""
    try:
        stats = load_reference(path)
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"ref={ref}: {str(err).removeprefix(f'{path}: ')}") from None
    dim = getattr(extractor, "dim", None)
    if dim is not None and stats.mu.shape[0] != dim:
        raise ValueError(
            f"ref={ref}: {path} holds {stats.mu.shape[0]}-d features; the {mode} feature network gives {dim}-d "
            f"(statistics of another network: give a reference computed with mode={mode})"
        )
    return stats


def resolve_swd_reference(cfg: EvaluateConfig, images, num: int, device, progress: bool):
    """``images``: ``_reference_images``'s result -> (SWDReference for ``num`` fakes with its floor,
    description for the JSON)."""
    dataset, info = images  # never None: check_config refused files of statistics
    cache = Path(cfg.metrics.cache_dir).expanduser() if cfg.metrics.cache_dir else default_swd_cache_dir()
    ref = swd_reference(dataset, num, seed=cfg.seed, batch_size=cfg.batch_size, device=device, cache_dir=cache,
                        progress=progress)  # fmt: skip
    return ref, {**info, "n": ref.num_images, "num_items": len(dataset), "cache": ref.meta.get("path")}


def check_config(cfg: EvaluateConfig) -> None:
    if cfg.mode not in MODES:
        raise ValueError(f"mode: {cfg.mode!r}; choose one of {', '.join(MODES)}")
    if (cfg.run is None) == (cfg.fake is None):
        raise ValueError(
            "run= or fake=: give exactly one (run: a run directory, export folder, .safetensors or Hub id; "
            "fake: a folder or zip of images)"
        )
    if cfg.fake is not None and cfg.checkpoint is not None:
        raise ValueError("checkpoint: goes with run= (a generator), not with fake=")
    if cfg.num_samples is not None and cfg.num_samples < 2:
        raise ValueError(f"num_samples: at least 2 images are needed for a covariance, got {cfg.num_samples}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {cfg.batch_size}")
    if not cfg.metrics.fid and not cfg.metrics.swd:
        raise ValueError("metrics.fid=false and metrics.swd=false: nothing to compute; set metrics.swd=true for SWD alone")
    if cfg.metrics.swd and (cfg.ref in ADM_REFS or Path(str(cfg.ref)).suffix == ".npz"):
        raise ValueError(
            f"ref={cfg.ref}: holds Inception statistics only, and SWD needs reference images: give ref=dataset, "
            f"a folder or a .zip of real images (or drop metrics.swd=true)"
        )
    if cfg.write_ref and not cfg.metrics.fid:
        raise ValueError("write_ref: saves Inception statistics, which metrics.fid=false does not compute")


def evaluate(
    cfg: EvaluateConfig, device: torch.device | str = "cpu", is_main: bool = True, world_size: int = 1, extractor=None
) -> dict:
    """Score ``cfg.run`` (a generator) or ``cfg.fake`` (images) against ``cfg.ref``; write the JSON
    (main process) and return the result. ``extractor``: the feature network (default: Inception
    in ``cfg.mode``; tests pass a small one; never built with ``metrics.fid=false``)."""
    check_config(cfg)
    if is_main:  # before anything slow: a path that cannot be written must not cost the evaluation
        for key, path in (("out", cfg.out), ("write_ref", cfg.write_ref)):
            if path:
                _check_writable(Path(path).expanduser(), key)
    device = torch.device(device)
    use_fid, use_swd = cfg.metrics.fid, cfg.metrics.swd
    if use_fid and extractor is None:  # first: without weights, nothing else is worth doing (and the message says why)
        extractor = build_feature_extractor(cfg.mode, cfg.metrics.inception_weights, device)
    t0 = time.time()
    generator, fake_images, run_data = None, None, None
    if cfg.run is not None:
        generator = load_generator(cfg.run, cfg.checkpoint, device).float()
        resolution = generator.resolution
        run_data = _run_data(cfg, generator)
    else:
        fake_images = images_dataset(cfg.fake, cfg.resolution, cfg.num_samples)
        resolution = fake_images.resolution
    if cfg.resolution is not None and generator is not None and cfg.resolution != resolution:
        raise ValueError(f"resolution: the generator makes {resolution} px images; drop resolution= or set it to {resolution}")
    if use_swd:
        swd_resolutions(resolution)  # a clear error now for sides SWD cannot take
    num = (cfg.num_samples or DEFAULT_NUM_SAMPLES) if generator is not None else len(fake_images)
    key = fid_key(num) if use_fid else "swd"
    step = (getattr(generator, "metadata", None) or {}).get("step") if generator is not None else None
    out = Path(cfg.out).expanduser() if cfg.out else _default_out(cfg, key, step, num)
    if is_main and not cfg.out:
        _check_writable(out, "out")
    reference = ref_info = swd_ref = swd_ref_info = None
    ref_images = _reference_images(cfg, run_data, resolution)  # one dataset object for FID and SWD
    if use_fid:
        reference, ref_info = resolve_reference(cfg, run_data, resolution, extractor, device, ref_images)
        if cfg.write_ref and is_main:
            try:
                save_reference(Path(cfg.write_ref).expanduser(), reference.mu, reference.sigma, reference.n,
                               reference.meta, reference.kid_features)  # fmt: skip
            except OSError as err:  # checked at the start; the evaluation is worth more than this copy
                warnings.warn(f"write_ref: could not write {cfg.write_ref} ({err}); the evaluation goes on", stacklevel=2)
    if use_swd:
        swd_ref, swd_ref_info = resolve_swd_reference(cfg, ref_images, num, device, is_main)
    # the SWD descriptors come from the same images as the Inception features (one pass)
    swd_acc = DescriptorAccumulator(resolution, patches_per_image(num), cfg.seed) if use_swd and use_fid else None
    hook = swd_acc.update if swd_acc is not None else None

    fake = fake_desc = None
    if generator is not None:
        sampler = None
        if generator.num_classes:
            try:  # fake labels with the training data's class frequencies
                sampler = LabelSampler(np.asarray(build_dataset(run_data).labels)) if run_data else None
            except (FileNotFoundError, ValueError):
                sampler = None
            sampler = sampler or LabelSampler.uniform(generator.num_classes)
        if use_fid:
            fake = compute_generator_stats(
                generator, num, cfg.batch_size, extractor, device=device, seed=cfg.seed, label_sampler=sampler,
                progress=is_main, image_hook=hook,
            )  # fmt: skip
        else:
            fake_desc = generator_descriptors(generator, num, cfg.batch_size, device, cfg.seed, sampler, progress=is_main)
        meta = getattr(generator, "metadata", None) or {}
        what = {"generator": {"source": str(cfg.run), "checkpoint": cfg.checkpoint, "step": meta.get("step"),
                              "kimg": meta.get("kimg")}, "seed": cfg.seed}  # fmt: skip
    else:
        if use_fid:
            fake = compute_dataset_stats(fake_images, extractor, batch_size=cfg.batch_size, device=device,
                                         is_splits=10 if num >= 10 else None, progress=is_main, image_hook=hook)  # fmt: skip
        else:
            fake_desc = dataset_descriptors(fake_images, batch_size=cfg.batch_size, device=device, seed=cfg.seed,
                                            progress=is_main)  # fmt: skip
        what = {"fake": {"path": str(cfg.fake), "n": num, "resolution": resolution}}
    result: dict = {}
    if use_fid:
        scores = compute_metrics(fake, reference, precision_recall=cfg.metrics.precision_recall)
        if not cfg.metrics.kid:
            scores = {k: v for k, v in scores.items() if not k.startswith("kid")}
        if not cfg.metrics.inception_score:
            scores = {k: v for k, v in scores.items() if not k.startswith("is")}
        result[fid_key(num)] = scores["fid"]
        result.update({k: v for k, v in scores.items() if k != "fid"})
    if use_swd:
        fake_desc = swd_acc.finalize() if swd_acc is not None else fake_desc
        swd_scores = swd_ref.score(fake_desc, device)
        result.update({k: v for k, v in swd_scores.items() if k != "swd_ref_n"}, swd_n=num)
    result.update({
        "num_samples": num,
        **({"mode": cfg.mode, "network": extractor.network_id, "reference": {**ref_info, "n": reference.n}}
           if use_fid else {}),
        **({"swd_reference": {**swd_ref_info, "seed": cfg.seed, "patches_per_image": swd_ref.descriptors.patches_per_image,
                              "floor": "swd between two disjoint random sets of n reference images"}}
           if use_swd else {}),
        **what,
        **({"feature_subset": None if fake.kid_features is None else len(fake.kid_features)} if use_fid else {}),
        "batch_size": cfg.batch_size,
        "world_size": world_size,
        "seconds": round(time.time() - t0, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"maxvit_gan": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "command": "maxvit-gan evaluate " + " ".join(
            f"{k}={v}" for k, v in (("run", cfg.run), ("checkpoint", cfg.checkpoint), ("fake", cfg.fake),
                                    ("num_samples", cfg.num_samples), ("ref", cfg.ref),
                                    ("mode", cfg.mode if use_fid else None), ("seed", cfg.seed),
                                    ("metrics.fid", None if use_fid else "false"),
                                    ("metrics.swd", "true" if use_swd else None)) if v is not None  # fmt: skip
        ),
    })  # fmt: skip
    if is_main:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text(out, json.dumps(result, indent=1, default=str))
        except OSError as err:
            error = ResultNotWrittenError(
                f"out: could not write the result to {out} ({type(err).__name__}: {err.strerror or err}); "
                "the scores are printed above"
            )
            error.result = result
            raise error from None
        result["json"] = str(out)
    return result


def format_scores(result: dict) -> str:
    """The printed line: FID (+ KID, IS, precision, recall), then ``swd X (real-vs-real floor Y)`` and
    the per-level values."""
    parts = [f"{k} {v:.4f}" for k, v in result.items()
             if k.startswith(("fid", "kid", "is", "precision", "recall")) and isinstance(v, float)]  # fmt: skip
    if "swd" in result:
        levels = [k[4:] for k in result if k.startswith("swd_") and k.endswith("px") and not k.startswith("swd_floor")]
        per_level = ", ".join(f"{r} {result['swd_' + r]:.3f} (floor {result['swd_floor_' + r]:.3f})" for r in levels)
        parts.append(f"swd {result['swd']:.4f} (real-vs-real floor {result['swd_floor']:.4f}; x1e3, per level: {per_level})")
    return "  ".join(parts)


def _default_out(cfg: EvaluateConfig, key: str, step: int | None, num: int) -> Path:
    ref = Path(str(cfg.ref)).stem
    mode = cfg.mode if cfg.metrics.fid else f"n{num}"  # SWD alone: no feature mode
    if cfg.run is not None and not is_hub_id(cfg.run) and RunDir(cfg.run).is_run():
        return RunDir(cfg.run).eval_dir / f"{key}-{ref}-{mode}-step{step if step is not None else 'na'}.json"
    name = Path(str(cfg.run or cfg.fake)).name or "fake"
    return Path(EVAL_DIR) / f"{key}-{name}-vs-{ref}-{mode}.json"

"""Evaluate a trained generator as papers do: FID (+ KID, IS) of N samples against a reference.

References (`ref=`):
  dataset          statistics of the run's own training data (cached by content hash)
  PATH.npz         an ADM reference batch (VIRTUAL_imagenet{128,256}_labeled.npz), a clean-fid
                   statistics file, or a file written by `write_ref=`
  PATH (folder/zip) statistics of that dataset at the run's resolution (cached)
  imagenet128/256  the ADM reference batch, from metrics.cache_dir (downloaded once if online)
Every function here is collective under `accelerate launch`: call it on every rank.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from maxvit_gan._version import __version__
from maxvit_gan.config import DataConfig, EvaluateConfig
from maxvit_gan.data import build_dataset
from maxvit_gan.metrics import (
    LabelSampler,
    build_feature_extractor,
    compute_generator_stats,
    compute_metrics,
    fid_key,
    load_reference,
    reference_stats_for_dataset,
    save_reference,
)
from maxvit_gan.metrics.reference import default_cache_dir
from maxvit_gan.models import read_generator_metadata
from maxvit_gan.rundir import RunDir, load_generator

ADM_REFS = {
    "imagenet64": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/64/VIRTUAL_imagenet64_labeled.npz",
    "imagenet128": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/128/VIRTUAL_imagenet128_labeled.npz",
    "imagenet256": "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/VIRTUAL_imagenet256_labeled.npz",
}


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


def resolve_reference(cfg: EvaluateConfig, run_data: DataConfig, extractor, device):
    """-> (FeatureStats, description of the reference for the JSON)."""
    ref = cfg.ref
    common = dict(cache_dir=cfg.metrics.cache_dir, batch_size=cfg.batch_size, device=device)
    if ref in ADM_REFS:
        path = _adm_reference(ref, cfg.metrics.cache_dir)
        return load_reference(path), {"kind": "adm", "name": ref, "path": str(path)}
    if ref == "dataset":
        dataset = build_dataset(run_data)
        stats = reference_stats_for_dataset(dataset, extractor, **common)
        return stats, {"kind": "dataset", "data": asdict(run_data), "n": stats.n, "cache": stats.path}
    path = Path(ref).expanduser()
    if path.suffix == ".npz":
        return load_reference(path), {"kind": "file", "path": str(path)}
    if not path.exists():
        raise FileNotFoundError(f"ref={ref}: not 'dataset', an ImageNet name ({', '.join(ADM_REFS)}), nor an existing path")
    data = replace(run_data, name="zip" if path.is_file() else "folder", path=str(path), max_images=None)
    stats = reference_stats_for_dataset(build_dataset(data), extractor, **common)
    return stats, {"kind": data.name, "path": str(path), "n": stats.n, "cache": stats.path}


def evaluate(cfg: EvaluateConfig, device: torch.device, is_main: bool, world_size: int) -> dict:
    run = RunDir(cfg.run)
    gen_path = Path(cfg.checkpoint).expanduser() if cfg.checkpoint else run.generator_file
    if not gen_path.is_file():
        raise FileNotFoundError(f"no generator weights at {gen_path} (checkpoint= or run=)")
    run_data = run.data_config()
    generator = load_generator(gen_path, device=device).float()
    gen_meta = read_generator_metadata(gen_path)
    extractor = build_feature_extractor(cfg.mode, cfg.metrics.inception_weights, device)
    t0 = time.time()
    reference, ref_info = resolve_reference(cfg, run_data, extractor, device)
    if cfg.write_ref and is_main:
        save_reference(cfg.write_ref, reference.mu, reference.sigma, reference.n, reference.meta, reference.kid_features)
    sampler = None
    if generator.num_classes:
        try:  # fake labels with the training data's class frequencies
            sampler = LabelSampler(np.asarray(build_dataset(run_data).labels))
        except (FileNotFoundError, ValueError):
            sampler = LabelSampler.uniform(generator.num_classes)
    fake = compute_generator_stats(
        generator, cfg.num_samples, cfg.batch_size, extractor, device=device, seed=cfg.seed,
        label_sampler=sampler, progress=is_main,
    )  # fmt: skip
    scores = compute_metrics(fake, reference)
    if not cfg.metrics.kid:
        scores = {k: v for k, v in scores.items() if not k.startswith("kid")}
    if not cfg.metrics.inception_score:
        scores = {k: v for k, v in scores.items() if not k.startswith("is")}
    key = fid_key(cfg.num_samples)
    result = {
        key: scores["fid"],
        **{k: v for k, v in scores.items() if k != "fid"},
        "num_samples": cfg.num_samples,
        "mode": cfg.mode,
        "network": extractor.network_id,
        "reference": {**ref_info, "n": reference.n},
        "generator": {"path": str(gen_path), "step": gen_meta.get("step"), "kimg": gen_meta.get("kimg")},
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "world_size": world_size,
        "seconds": round(time.time() - t0, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"maxvit_gan": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "command": f"scripts/evaluate.py run={cfg.run} num_samples={cfg.num_samples} ref={cfg.ref} mode={cfg.mode} seed={cfg.seed}",
    }
    if is_main:
        out = Path(cfg.out) if cfg.out else run.eval_dir / (
            f"{key}-{Path(str(cfg.ref)).stem}-{cfg.mode}-step{gen_meta.get('step', 'na')}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str))
        result["json"] = str(out)
    return result

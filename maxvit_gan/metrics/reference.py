"""Reference statistics: computed from a dataset (cached by content), or loaded from a file.

Cache key = sha256 of (dataset content hash, resolution, number of images, mode,
network id / weights hash, format version). A changed image changes the content
hash, hence the key: a stale cache after a dataset fix cannot be read. Files are
``.npz`` with ``mu``, ``sigma``, ``n``, optional ``kid_features`` and ``meta`` (JSON),
written atomically by rank 0 only.

Files from elsewhere (``load_reference``): ADM reference batches
(``VIRTUAL_imagenet{64,128,256}_labeled.npz``: ``mu``, ``sigma`` computed with the TF
Inception = our ``tf`` mode) and clean-fid statistics files (``mu``, ``sigma``; mode
``clean`` for ``*_clean_*`` files). Neither carries KID features, so KID is reported
only against dataset-computed references.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from maxvit_gan.data import dataset_content_hash
from maxvit_gan.files import atomic_path
from maxvit_gan.metrics.compute import compute_dataset_stats
from maxvit_gan.metrics.distributed import all_reduce_sum, dist_info
from maxvit_gan.metrics.stats import FeatureStats

CACHE_FORMAT = 1


def reference_cache_key(
    content_hash: str, resolution: int, num_items: int, mode: str, network_id: str
) -> str:
    blob = json.dumps(
        dict(
            data=content_hash,
            resolution=resolution,
            n=num_items,
            mode=mode,
            network=network_id,
            format=CACHE_FORMAT,
        ),
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("MAXVIT_GAN_CACHE", Path.home() / ".cache" / "maxvit_gan")) / "fid_refs"


def save_reference(
    path: Union[str, Path],
    mu: Any,
    sigma: Any,
    n: int | None = None,
    meta: dict | None = None,
    kid_features: np.ndarray | None = None,
) -> Path:
    """Write ``mu``, ``sigma`` (float64), ``n``, optional ``kid_features`` and ``meta`` (JSON) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(
        mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64), n=np.int64(-1 if n is None else n)
    )
    arrays["meta"] = np.array(json.dumps(meta or {}, sort_keys=True, default=str))
    if kid_features is not None:
        arrays["kid_features"] = np.asarray(kid_features, np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no .npz suffix to it
        np.savez(f, **arrays)
    return path


def load_reference(path: Union[str, Path]) -> FeatureStats:
    """Load ``mu``/``sigma`` from an ADM reference batch, a clean-fid stats file or ``save_reference`` output."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    with data:
        keys = list(data.keys())
        if "mu" not in keys or "sigma" not in keys:
            raise ValueError(
                f"{path}: expected arrays 'mu' [d] and 'sigma' [d, d] (an ADM reference batch "
                f"VIRTUAL_imagenet*_labeled.npz, a clean-fid stats .npz, or a file from save_reference); "
                f"found keys {keys}"
            )
        mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} are not [d] and [d, d]")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ValueError(f"{path}: 'mu' or 'sigma' holds NaN or infinite values: not usable reference statistics")
        n = int(data["n"]) if "n" in keys and int(data["n"]) >= 0 else None
        meta = json.loads(str(data["meta"])) if "meta" in keys else {}
        kid_features = np.asarray(data["kid_features"]) if "kid_features" in keys else None
    return FeatureStats(mu=mu, sigma=sigma, n=n, kid_features=kid_features, meta=meta, path=str(path))


def reference_stats_for_dataset(
    dataset: Any,
    extractor: Any,
    cache_dir: Union[str, Path] | None = None,
    resolution: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    device: Union[str, torch.device] = "cpu",
    max_items: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    kid_max_samples: int = 10000,
    content_hash: str | None = None,
    progress: bool = True,
) -> FeatureStats:
    """Statistics of ``dataset`` with ``extractor``'s preprocessing, cached on disk.

    ``cache_dir``: ``metrics.cache_dir``; None = ``$MAXVIT_GAN_CACHE/fid_refs`` or
    ``~/.cache/maxvit_gan/fid_refs``. Every rank checks the cache; only if all see the
    file is it read, else all ranks compute (distributed) and rank 0 writes. Call on every rank.
    """
    rank, world_size = dist_info(rank, world_size)
    n = len(dataset) if max_items is None else min(len(dataset), max_items)
    if resolution is None:
        first = dataset[0]
        resolution = int((first[0] if isinstance(first, (list, tuple)) else first).shape[-1])
    if content_hash is None:
        content_hash = dataset_content_hash(dataset, max_items)
    mode = getattr(extractor, "mode", "unknown")
    network_id = getattr(extractor, "network_id", type(extractor).__name__)
    key = reference_cache_key(content_hash, resolution, n, mode, network_id)
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = path / f"ref-{mode}-{resolution}px-n{n}-{key[:20]}.npz"

    ref, damage = None, None
    if path.is_file():
        try:
            ref = load_reference(path)
        except ValueError as err:  # truncated or damaged: computed again (below) and overwritten
            damage = err
    have = all_reduce_sum(torch.tensor([0.0 if ref is not None else 1.0], dtype=torch.float64)).item() == 0
    if have and ref.meta.get("key") == key:
        ref.meta["cache"] = "hit"
        return ref
    if damage is not None and rank == 0:
        warnings.warn(f"cached reference statistics {path} are damaged ({damage}); computing them again", stacklevel=2)
    stats = compute_dataset_stats(
        dataset, extractor, batch_size=batch_size, num_workers=num_workers, device=device, max_items=max_items,
        rank=rank, world_size=world_size, kid_max_samples=kid_max_samples, is_splits=None, progress=progress,
    )  # fmt: skip
    meta = dict(key=key, data=content_hash, resolution=resolution, n=n, mode=mode, network=network_id)
    if rank == 0:
        save_reference(path, stats.mu, stats.sigma, stats.n, meta, stats.kid_features)
    return dataclasses.replace(stats, meta=dict(meta, cache="miss"), path=str(path))


def get_reference(ref: str | None, dataset: Any = None, extractor: Any = None, **kwargs) -> FeatureStats:
    """``metrics.fid.ref``: a path -> ``load_reference``; None -> ``reference_stats_for_dataset(dataset, ...)``."""
    if ref is not None:
        return load_reference(ref)
    if dataset is None or extractor is None:
        raise ValueError(
            "metrics.fid.ref is null: reference statistics need the dataset and the feature extractor"
        )
    return reference_stats_for_dataset(dataset, extractor, **kwargs)


__all__ = [
    "reference_cache_key",
    "save_reference",
    "load_reference",
    "reference_stats_for_dataset",
    "get_reference",
]

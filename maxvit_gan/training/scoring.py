"""Scores of the EMA generator during training: FID (+ KID, IS) every ``metrics.fid.every_kimg``
(FID10k-style tracking, not a paper number), SWD with its real-vs-real floor every
``metrics.swd.every_kimg`` (no download: maxvit_gan/metrics/swd.py).

Built once: the Inception extractor (downloaded on the main process first, or
`metrics.inception_weights`) and the reference statistics (`metrics.fid.ref`, or the
training data's statistics, cached on disk by content hash). When no weights can be had,
tracking is switched off with one warning, so an offline CPU demo still runs.
Every call is collective: run it on every rank.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from accelerate.utils import gather_object

from maxvit_gan.config import MetricsConfig
from maxvit_gan.metrics import (
    InceptionWeightsError,
    LabelSampler,
    build_feature_extractor,
    compute_generator_stats,
    compute_metrics,
    fid_key,
    get_reference,
    load_reference,
)
from maxvit_gan.metrics.reference import default_cache_dir
from maxvit_gan.metrics.swd import GeneratorSWD


class Scorer:
    def __init__(self, cfg: MetricsConfig, accelerator, dataset, seed: int):
        self.cfg = cfg
        self.accelerator = accelerator
        self.dataset = dataset
        self.seed = seed
        self.enabled = cfg.fid.every_kimg > 0  # FID
        self.swd_metric = None
        if cfg.swd.every_kimg > 0:  # a fixed seed: runs with other training seeds stay comparable
            self.swd_metric = GeneratorSWD(dataset, cfg.swd.num_samples, cfg.swd.batch_size, accelerator.device, seed=0)
        self.extractor = None
        self.reference = None
        self.key = fid_key(cfg.fid.num_samples)

    @property
    def best_key(self) -> str | None:
        """The score that picks the best checkpoint: FID when it is tracked (and its weights are
        there), else SWD when that is tracked (no download), else none."""
        if self.enabled:
            return self.key
        return "swd" if self.swd_metric is not None else None

    def prepare(self) -> None:
        """Before step 0 (collective): everything the first evaluation needs, so that a missing
        reference file, an unwritable cache or missing Inception weights show at the start, not
        hours in. FID tracking without weights is switched off with one warning (the CPU demo
        runs offline); a bad ``metrics.fid.ref`` or ``metrics.cache_dir`` is an error naming it."""
        if self.enabled:
            if self.cfg.fid.ref is not None:
                ref = Path(self.cfg.fid.ref).expanduser()
                if not ref.is_file():
                    raise FileNotFoundError(f"metrics.fid.ref: {ref} does not exist (a .npz of reference statistics)")
                try:
                    load_reference(ref)
                except ValueError as err:
                    raise ValueError(f"metrics.fid.ref: {err}") from None
            else:
                _check_writable(Path(self.cfg.cache_dir).expanduser() if self.cfg.cache_dir else default_cache_dir(), "metrics.cache_dir")
            self._setup()
            if self.reference is not None and self.extractor is not None:
                dim = getattr(self.extractor, "dim", None)
                if dim is not None and self.reference.mu.shape[0] != dim:
                    where = f"metrics.fid.ref: {self.cfg.fid.ref}" if self.cfg.fid.ref else "the reference statistics"
                    raise ValueError(f"{where} have {self.reference.mu.shape[0]}-d features; the {self.cfg.mode} network gives {dim}-d")

    def _setup(self) -> bool:
        acc = self.accelerator
        if self.extractor is not None:
            return True
        ok = True
        with acc.main_process_first():  # one download into the cache, the others read it
            try:
                self.extractor = build_feature_extractor(self.cfg.mode, self.cfg.inception_weights, acc.device)
            except InceptionWeightsError as err:
                ok = False
                if acc.is_main_process:
                    warnings.warn(f"FID tracking is off (metrics.fid.every_kimg ignored): {err}", stacklevel=2)
        ok = all(gather_object([ok])) if acc.num_processes > 1 else ok
        if not ok:
            self.enabled = False
            self.extractor = None
            return False
        self.reference = get_reference(
            self.cfg.fid.ref,
            self.dataset,
            self.extractor,
            cache_dir=self.cfg.cache_dir,
            batch_size=self.cfg.fid.batch_size,
            device=acc.device,
            progress=acc.is_main_process,
        )
        return True

    def __call__(self, generator) -> dict | None:
        """Metrics of ``generator`` (the EMA module, fp32) or None when tracking is off."""
        if not self.enabled or not self._setup():
            return None
        labels = getattr(self.dataset, "labels", None)
        sampler = LabelSampler(np.asarray(labels)) if generator.num_classes and labels is not None else None
        fake = compute_generator_stats(
            generator,
            self.cfg.fid.num_samples,
            self.cfg.fid.batch_size,
            self.extractor,
            device=self.accelerator.device,
            seed=self.seed,
            label_sampler=sampler,
            progress=self.accelerator.is_main_process,
        )
        out = compute_metrics(fake, self.reference)
        result = {self.key: out["fid"]}
        if self.cfg.kid and "kid" in out:
            result[f"kid{self.key[3:]}"] = out["kid"]
        if self.cfg.inception_score and "is" in out:
            result[f"is{self.key[3:]}"] = out["is"]
        return result

    def swd(self, generator) -> dict | None:
        """``{"swd", "swd_floor", "swd_<side>px"...}`` of ``generator`` (collective) or None when off."""
        if self.swd_metric is None:
            return None
        out = self.swd_metric(generator)
        return {k: v for k, v in out.items() if k.startswith("swd") and isinstance(v, float)}


def _check_writable(folder: Path, key: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(f"{key}: {folder} is not writable ({err.strerror or err}); set {key}=<a writable folder>") from None

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

import warnings

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
)
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

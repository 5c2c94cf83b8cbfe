"""Streaming, distributed feature statistics: the result of one pass over N images.

Everything that decides a number is float64. Per process we keep running sums
(sum of x, sum of x x^T, count), a tiny per-split accumulator for the Inception
Score and a bounded random subset of the features for KID (which samples: see
``kid_is``); one collective of each kind combines the processes
(``distributed``). No images and no full feature matrices are gathered. So the
statistics depend on N and the samples, never on world size or batch size (up to
float summation order).

``FeatureAccumulator.finalize`` runs collectives: call it on every rank, never
inside ``if is_main_process``. ``compute_metrics`` turns two statistics into
FID (+ KID, IS): pure computation, no collectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch

from maxvit_gan.metrics.distributed import all_gather_rows, all_reduce_sum, is_distributed
from maxvit_gan.metrics.frechet import ArrayLike, frechet_distance
from maxvit_gan.metrics.kid_is import IS_RNG_SEED, StreamingInceptionScore, kid, sample_positions


class StreamingStats:
    """float64 running sum of x, of x x^T and the count; exact mean and covariance.

    ``update`` per batch, ``all_reduce()`` once on every rank (sums, so the order of
    ranks and batches does not matter), then ``mean_cov()``.
    """

    def __init__(self, dim: int, device: Union[str, torch.device] = "cpu"):
        self.dim = int(dim)
        self.sum = torch.zeros(self.dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=device)
        self.count = 0

    @torch.no_grad()
    def update(self, feats: ArrayLike) -> None:
        x = torch.as_tensor(feats).to(self.sum.device, torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features [B, {self.dim}], got {tuple(x.shape)}")
        self.sum += x.sum(0)
        self.sum_outer += x.T @ x
        self.count += x.shape[0]

    def all_reduce(self) -> StreamingStats:
        """Sum the accumulators over all processes (no-op without a process group). Every rank must call it."""
        if is_distributed():
            flat = torch.cat(
                [
                    self.sum,
                    self.sum_outer.reshape(-1),
                    torch.tensor([float(self.count)], dtype=torch.float64, device=self.sum.device),
                ]
            )
            flat = all_reduce_sum(flat)
            d = self.dim
            self.sum = flat[:d].clone()
            self.sum_outer = flat[d : d + d * d].reshape(d, d).clone()
            self.count = int(round(flat[-1].item()))
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [d], sigma [d, d]) in float64; sigma = (S - n mu mu^T) / (n - 1)."""
        n = self.count
        if n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, have {n}")
        s = self.sum.cpu().numpy()
        ss = self.sum_outer.cpu().numpy()
        mu = s / n
        sigma = (ss - n * np.outer(mu, mu)) / (n - 1)
        return mu, 0.5 * (sigma + sigma.T)


@dataclass
class FeatureStats:
    """Feature statistics of a set of images: of generated samples, of a dataset, or loaded from a file.

    One pass (``FeatureAccumulator.finalize``) gives the same object on every rank after the
    collectives; ``reference.load_reference`` fills what a file holds (ADM and clean-fid files
    have only ``mu`` and ``sigma``).
    """

    mu: np.ndarray  # [d] float64
    sigma: np.ndarray  # [d, d] float64
    n: int | None = None  # images counted across all processes (None: a file that does not say)
    kid_features: np.ndarray | None = None  # [min(N, kid_max_samples), d] float32: uniform random subset
    inception_score: tuple[float, float] | None = None  # (mean, std) over splits
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the file the statistics were read from or cached in


class FeatureAccumulator:
    """Everything one pass accumulates: StreamingStats (FID), a KID subset, the IS splits.

    ``update(out, global_indices)`` with the extractor's output dict;
    ``finalize()`` runs the collectives (call it on every rank) and returns FeatureStats.
    """

    def __init__(
        self,
        dim: int,
        num_total: int,
        kid_max_samples: int = 10000,
        is_splits: int | None = 10,
        device: Union[str, torch.device] = "cpu",
        seed: int = IS_RNG_SEED,
    ):
        if kid_max_samples and kid_max_samples > 2**24:
            raise ValueError("kid_max_samples must be <= 2**24 (positions travel as float32 in the gather)")
        self.stats = StreamingStats(dim, device)
        self.num_total = num_total
        self.kid_max_samples = kid_max_samples
        self.is_splits = is_splits if (is_splits and num_total >= is_splits) else None
        self.device = device
        self.pos = torch.from_numpy(sample_positions(num_total, seed))
        self.kid_rows: list[torch.Tensor] = []
        self.kid_pos: list[torch.Tensor] = []
        self.isc: StreamingInceptionScore | None = None

    @torch.no_grad()
    def update(self, out: dict[str, torch.Tensor | None], global_indices: ArrayLike) -> None:
        g = torch.as_tensor(global_indices, dtype=torch.int64).cpu()
        feats = out["features"]
        if feats.shape[0] != g.shape[0]:
            raise ValueError(f"{feats.shape[0]} feature rows for {g.shape[0]} indices")
        self.stats.update(feats)
        pos = self.pos[g]
        if self.kid_max_samples:
            keep = pos < self.kid_max_samples
            if keep.any():
                self.kid_rows.append(feats[keep.to(feats.device)].float().cpu())
                self.kid_pos.append(pos[keep])
        logits = out.get("logits")
        if self.is_splits and logits is not None:
            if self.isc is None:
                self.isc = StreamingInceptionScore(
                    logits.shape[1], self.num_total, self.is_splits, self.device
                )
            self.isc.update(logits, pos)

    def finalize(self) -> FeatureStats:
        self.stats.all_reduce()
        if self.stats.count != self.num_total:
            raise RuntimeError(
                f"counted {self.stats.count} samples across processes, expected {self.num_total}"
            )
        mu, sigma = self.stats.mean_cov()
        kid_feats = None
        if self.kid_max_samples:
            d = self.stats.dim
            rows = torch.cat(self.kid_rows) if self.kid_rows else torch.zeros(0, d)
            pos = torch.cat(self.kid_pos) if self.kid_pos else torch.zeros(0, dtype=torch.int64)
            # gather [pos | features] so the order (by shuffled position) is the same for any world size
            # (float32 holds positions exactly below 2^24 = 16.7M samples)
            both = all_gather_rows(torch.cat([pos.float()[:, None], rows.float()], 1))
            order = torch.argsort(both[:, 0])
            kid_feats = both[order, 1:].float().numpy()
        is_val = None
        if self.is_splits:
            # every rank must join the collective, even one that saw no logits
            has = all_reduce_sum(torch.tensor([1.0 if self.isc is not None else 0.0], dtype=torch.float64))
            if has.item() > 0:
                if self.isc is None:
                    raise RuntimeError("some processes produced logits and others did not")
                is_val = self.isc.all_reduce().compute()
        return FeatureStats(
            mu=mu, sigma=sigma, n=self.stats.count, kid_features=kid_feats, inception_score=is_val
        )


def compute_metrics(
    fake: FeatureStats,
    ref: Any,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    precision_recall: bool = False,
    pr_k: int = 3,
) -> dict[str, float]:
    """FID (and KID when both sides carry KID features; IS of the fake side when present;
    with ``precision_recall``, precision and recall (k = ``pr_k``) from the same kept features).

    ``ref`` is anything with ``mu``, ``sigma`` and optionally ``kid_features``
    (a FeatureStats, computed or loaded). Pure computation, no collectives.
    """
    out = {"fid": frechet_distance(fake.mu, fake.sigma, ref.mu, ref.sigma)}
    ref_kid = getattr(ref, "kid_features", None)
    if (
        fake.kid_features is not None
        and ref_kid is not None
        and min(len(fake.kid_features), len(ref_kid)) >= 2
    ):
        out["kid"], out["kid_std"] = kid(fake.kid_features, ref_kid, kid_subsets, kid_subset_size)
    if (
        precision_recall
        and fake.kid_features is not None
        and ref_kid is not None
        and min(len(fake.kid_features), len(ref_kid)) > pr_k
    ):
        from maxvit_gan.metrics.precision_recall import precision_recall as pr

        out["precision"], out["recall"] = pr(ref_kid, fake.kid_features, k=pr_k)
    if fake.inception_score is not None:
        out["is"], out["is_std"] = fake.inception_score
    return out


__all__ = ["FeatureAccumulator", "FeatureStats", "StreamingStats", "compute_metrics"]

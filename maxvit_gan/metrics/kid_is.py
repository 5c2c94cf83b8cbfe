"""Kernel Inception Distance and Inception Score, the same numbers as torch-fidelity.

Sample order. Every sample has a *global index* ``g`` in ``[0, N)`` (generated:
rank r owns a contiguous block; dataset: the dataset index). A fixed permutation
``perm = RandomState(2020).permutation(N)`` (torch-fidelity's ``samples_shuffle``
with its default ``rng_seed``) gives each sample a position ``pos[g]``
(``sample_positions``):
  * Inception Score splits are contiguous chunks of positions, exactly as
    torch-fidelity's ``isc_features_to_metric(shuffle=True)``;
  * the KID subset that a pass keeps (``stats.FeatureAccumulator``) is the samples
    with ``pos[g] < kid_max_samples``: a uniform random subset of fixed size, the
    same whatever the number of processes.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from maxvit_gan.metrics.distributed import all_reduce_sum
from maxvit_gan.metrics.frechet import ArrayLike, as_float64

IS_RNG_SEED = 2020  # torch-fidelity's default rng_seed (sample shuffle before IS splits, KID subsets)


def sample_positions(num: int, seed: int = IS_RNG_SEED) -> np.ndarray:
    """pos[g] = position of sample g after torch-fidelity's shuffle ``x[RandomState(seed).permutation(num)]``."""
    perm = np.random.RandomState(seed).permutation(num)
    pos = np.empty(num, dtype=np.int64)
    pos[perm] = np.arange(num, dtype=np.int64)
    return pos


class StreamingInceptionScore:
    """Inception Score accumulated per split: for each split k, sum_x p(y|x), sum_x sum_y p log p, count.

    IS_k = exp( mean_x sum_y p log p  -  sum_y pbar_k log pbar_k ), pbar_k = split mean of p:
    algebraically the split's mean KL(p(y|x) || pbar_k) that torch-fidelity computes.
    Sample g goes to split ``chunk(pos[g])`` so the splits equal torch-fidelity's
    (shuffle with rng_seed 2020, then ``i*N//splits`` boundaries).
    """

    def __init__(
        self, num_classes: int, num_total: int, splits: int = 10, device: Union[str, torch.device] = "cpu"
    ):
        if num_total < splits:
            raise ValueError(
                f"Inception Score with {splits} splits needs at least {splits} samples, got {num_total}"
            )
        self.splits = splits
        self.num_total = num_total
        bounds = np.array([i * num_total // splits for i in range(splits + 1)])
        self._split_of_pos = torch.from_numpy(np.searchsorted(bounds, np.arange(num_total), side="right") - 1)
        self.sums = torch.zeros(splits, num_classes + 2, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, positions: ArrayLike) -> None:
        logits = logits.to(self.sums.device, torch.float64)
        k = self._split_of_pos[torch.as_tensor(positions, dtype=torch.int64)].to(self.sums.device)
        p = logits.softmax(1)
        plogp = (p * logits.log_softmax(1)).sum(1, keepdim=True)
        rows = torch.cat([p, plogp, torch.ones_like(plogp)], 1)
        self.sums.index_add_(0, k, rows)

    def all_reduce(self) -> StreamingInceptionScore:
        self.sums = all_reduce_sum(self.sums)
        return self

    def compute(self) -> tuple[float, float]:
        sums = self.sums.cpu().numpy()
        n = sums[:, -1:]
        if (n == 0).any():
            raise ValueError("an Inception Score split is empty: did every sample get counted?")
        pbar = sums[:, :-2] / n
        neg_ent = sums[:, -2] / n[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(pbar > 0, pbar * np.log(pbar), 0.0).sum(1)
        scores = np.exp(neg_ent - cross)
        return float(scores.mean()), float(scores.std())


def kid(
    feats_fake: ArrayLike,
    feats_real: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = IS_RNG_SEED,
) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the kernel
    ``(x.y/d + coef0)^degree`` over ``num_subsets`` random subsets (without replacement),
    mean and std over subsets. ``subset_size`` is clamped to the smaller feature set.
    Same subset draws as torch-fidelity's ``kid_features_to_metric`` (fake first, then real).
    """
    x_all, y_all = as_float64(feats_fake), as_float64(feats_real)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"KID needs two [n, d] arrays of equal d, got {x_all.shape} and {y_all.shape}")
    m = min(subset_size, len(x_all), len(y_all))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(x_all)} and {len(y_all)}")
    d = x_all.shape[1]
    rng = np.random.RandomState(seed)
    mmds = np.zeros(num_subsets)
    for i in range(num_subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        kxx = (x @ x.T / d + coef0) ** degree
        kyy = (y @ y.T / d + coef0) ** degree
        kxy = (x @ y.T / d + coef0) ** degree
        mmds[i] = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (
            m * (m - 1)
        ) - 2.0 * kxy.sum() / (m * m)
    return float(mmds.mean()), float(mmds.std())


def inception_score(
    logits: ArrayLike, splits: int = 10, shuffle: bool = True, seed: int = IS_RNG_SEED
) -> tuple[float, float]:
    """Inception Score (mean, std over splits) of an in-memory logits array [N, C] (the streaming
    ``StreamingInceptionScore`` computes the same thing without keeping the logits)."""
    logits_t = torch.as_tensor(as_float64(logits))
    n = logits_t.shape[0]
    pos = sample_positions(n, seed) if shuffle else np.arange(n)
    streaming = StreamingInceptionScore(logits_t.shape[1], n, splits)
    streaming.update(logits_t, pos)
    return streaming.compute()


__all__ = ["IS_RNG_SEED", "StreamingInceptionScore", "inception_score", "kid", "sample_positions"]

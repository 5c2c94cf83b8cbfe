"""Streaming, distributed feature statistics; Frechet distance; KID; Inception Score.

Everything that decides a number is float64. Per process we keep running sums
(sum of x, sum of x x^T, count), a tiny per-split accumulator for the Inception
Score and a bounded random subset of the features for KID; one collective of each
kind combines the processes. No images and no full feature matrices are gathered.

Sample order. Every sample has a *global index* ``g`` in ``[0, N)`` (generated:
rank r owns a contiguous block; dataset: the dataset index). A fixed permutation
``perm = RandomState(2020).permutation(N)`` (torch-fidelity's ``samples_shuffle``
with its default ``rng_seed``) gives each sample a position ``pos[g]``:
  * Inception Score splits are contiguous chunks of positions, exactly as
    torch-fidelity's ``isc_features_to_metric(shuffle=True)``;
  * the KID subset is the samples with ``pos[g] < kid_max_samples``: a uniform
    random subset of fixed size, the same whatever the number of processes.
So the statistics depend on N and the samples, never on world size or batch size
(up to float summation order).

Collectives (``all_reduce`` / ``all_gather``) run on every rank whenever
``torch.distributed`` is initialized with more than one process; call them on all
ranks, never inside ``if is_main_process``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
import torch.distributed as dist

ArrayLike = Union[np.ndarray, torch.Tensor]

IS_RNG_SEED = 2020  # torch-fidelity's default rng_seed (sample shuffle before IS splits, KID subsets)


def _to_f64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- Frechet distance


def _clean_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: negatives and those below
    ``d * eps * max`` (the error of eigh) become 0. Without this, each of the ~d-n null
    eigenvalues of a rank-deficient covariance adds sqrt(1e-15) ~ 3e-8 to the trace."""
    tol = w.shape[0] * np.finfo(np.float64).eps * max(float(np.abs(w).max(initial=0.0)), 1e-300)
    return np.where(w > tol, w, 0.0)


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix (noise eigenvalues set to 0)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(_clean_eigenvalues(w))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``|mu1-mu2|^2 + tr(s1) + tr(s2) - 2 tr((s1 s2)^{1/2})`` with
    ``tr((s1 s2)^{1/2}) = sum sqrt(eig(s1^{1/2} s2 s1^{1/2}))``: the product is
    symmetric PSD, so both steps are symmetric eigendecompositions (no complex
    ``sqrtm``, no ``eps`` offset); eigenvalues at rounding level are zeroed, so
    rank-deficient covariances (n < d) are accurate too.
    """
    mu1, mu2 = _to_f64(mu1).reshape(-1), _to_f64(mu2).reshape(-1)
    s1, s2 = _to_f64(sigma1), _to_f64(sigma2)
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}"
        )
    s1 = 0.5 * (s1 + s1.T)
    s2 = 0.5 * (s2 + s2.T)
    r1 = _sym_sqrt(s1)
    m = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh(0.5 * (m + m.T))
    tr_covmean = np.sqrt(_clean_eigenvalues(eig)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


# ----------------------------------------------------------------------------- distributed helpers


def dist_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's, else (0, 1)."""
    initialized = dist.is_available() and dist.is_initialized()
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, world_size={world_size})")
    return rank, world_size


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    """NCCL needs CUDA tensors; gloo (and everything else here) uses CPU tensors."""
    if "nccl" in str(dist.get_backend()).lower():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all processes (a no-op in a single process). Call on every rank."""
    if not _distributed():
        return t
    x = t.to(_comm_device())
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x.to(t.device)


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate (in rank order) the rows of ``t`` from all processes; row counts may differ."""
    if not _distributed():
        return t
    dev = _comm_device()
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c.item()) for c in counts]
    m = max(counts)
    pad = torch.zeros((m, *t.shape[1:]), dtype=t.dtype, device=dev)
    pad[: t.shape[0]] = t.to(dev)
    out = [torch.zeros_like(pad) for _ in range(world)]
    dist.all_gather(out, pad)
    return torch.cat([o[:c] for o, c in zip(out, counts)]).to(t.device)


def split_count(num: int, rank: int, world_size: int) -> tuple[int, int]:
    """(offset, count) of rank's contiguous share: ``num//W + (rank < num%W)`` items."""
    base, rem = divmod(num, world_size)
    return rank * base + min(rank, rem), base + (1 if rank < rem else 0)


def sample_positions(num: int, seed: int = IS_RNG_SEED) -> np.ndarray:
    """pos[g] = position of sample g after torch-fidelity's shuffle ``x[RandomState(seed).permutation(num)]``."""
    perm = np.random.RandomState(seed).permutation(num)
    pos = np.empty(num, dtype=np.int64)
    pos[perm] = np.arange(num, dtype=np.int64)
    return pos


# ----------------------------------------------------------------------------- accumulators


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
        if _distributed():
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
        self.acc = torch.zeros(splits, num_classes + 2, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, positions: ArrayLike) -> None:
        logits = logits.to(self.acc.device, torch.float64)
        k = self._split_of_pos[torch.as_tensor(positions, dtype=torch.int64)].to(self.acc.device)
        p = logits.softmax(1)
        plogp = (p * logits.log_softmax(1)).sum(1, keepdim=True)
        rows = torch.cat([p, plogp, torch.ones_like(plogp)], 1)
        self.acc.index_add_(0, k, rows)

    def all_reduce(self) -> StreamingInceptionScore:
        self.acc = all_reduce_sum(self.acc)
        return self

    def compute(self) -> tuple[float, float]:
        acc = self.acc.cpu().numpy()
        n = acc[:, -1:]
        if (n == 0).any():
            raise ValueError("an Inception Score split is empty: did every sample get counted?")
        pbar = acc[:, :-2] / n
        neg_ent = acc[:, -2] / n[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(pbar > 0, pbar * np.log(pbar), 0.0).sum(1)
        scores = np.exp(neg_ent - cross)
        return float(scores.mean()), float(scores.std())


# ----------------------------------------------------------------------------- KID and IS from arrays


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
    x_all, y_all = _to_f64(feats_fake), _to_f64(feats_real)
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
    logits_t = torch.as_tensor(_to_f64(logits))
    n = logits_t.shape[0]
    pos = sample_positions(n, seed) if shuffle else np.arange(n)
    acc = StreamingInceptionScore(logits_t.shape[1], n, splits)
    acc.update(logits_t, pos)
    return acc.compute()


# ----------------------------------------------------------------------------- the result of one pass


@dataclass
class FeatureStats:
    """What one pass over N images gives (identical on every rank after the collectives)."""

    mu: np.ndarray  # [d] float64
    sigma: np.ndarray  # [d, d] float64
    n: int  # samples counted across all processes
    kid_features: np.ndarray | None = None  # [min(N, kid_max_samples), d] float32: uniform random subset
    inception_score: tuple[float, float] | None = None  # (mean, std) over splits
    meta: dict[str, Any] = field(default_factory=dict)


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
) -> dict[str, float]:
    """FID (and KID when both sides carry KID features; IS of the fake side when present).

    ``ref`` is anything with ``mu``, ``sigma`` and optionally ``kid_features``
    (FeatureStats or reference.ReferenceStats). Pure computation, no collectives.
    """
    out = {"fid": frechet_distance(fake.mu, fake.sigma, ref.mu, ref.sigma)}
    ref_kid = getattr(ref, "kid_features", None)
    if (
        fake.kid_features is not None
        and ref_kid is not None
        and min(len(fake.kid_features), len(ref_kid)) >= 2
    ):
        out["kid"], out["kid_std"] = kid(fake.kid_features, ref_kid, kid_subsets, kid_subset_size)
    if fake.inception_score is not None:
        out["is"], out["is_std"] = fake.inception_score
    return out


__all__ = [
    "frechet_distance",
    "StreamingStats",
    "StreamingInceptionScore",
    "FeatureAccumulator",
    "FeatureStats",
    "kid",
    "inception_score",
    "compute_metrics",
    "all_reduce_sum",
    "all_gather_rows",
    "dist_info",
    "split_count",
    "sample_positions",
]

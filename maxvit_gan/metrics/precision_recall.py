"""Improved precision and recall (Kynkaanniemi et al. 2019), as StyleGAN2-ADA computes them.

Each feature set spans a manifold: the union of balls around its points, each ball reaching
that point's k-th nearest neighbour in the same set (k = 3; the point itself does not count).
Precision = the fraction of generated samples inside the real manifold (fidelity); recall =
the fraction of real samples inside the generated manifold (coverage). This is StyleGAN2-ADA's
``metrics/precision_recall.py`` (``nhood_size=3``, ``pr50k3``) on the features given.

Here the features are the Inception pool3 features of the FID pass (the subset kept for KID),
not StyleGAN2-ADA's VGG16 features: the definition is the same, the numbers are not
comparable with a published ``pr50k3``. Distances are Euclidean, in float32, in row blocks
(memory ``block x N``), on the device of the features.
"""

from __future__ import annotations

import numpy as np
import torch

from maxvit_gan.metrics.frechet import ArrayLike


def _as_tensor(x: ArrayLike, device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(device=device, dtype=torch.float32)


def _kth_neighbour_radii(manifold: torch.Tensor, k: int, block: int) -> torch.Tensor:
    """Distance of every manifold point to its k-th nearest other point (self excluded)."""
    radii = [torch.cdist(rows, manifold).kthvalue(k + 1, dim=1).values for rows in manifold.split(block)]
    return torch.cat(radii)


def _inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, block: int) -> torch.Tensor:
    """For every probe: is it within the radius of at least one manifold point?"""
    return torch.cat([(torch.cdist(rows, manifold) <= radii[None, :]).any(dim=1) for rows in probes.split(block)])


def precision_recall(
    real: ArrayLike, fake: ArrayLike, k: int = 3, block: int = 1024, device: str | torch.device | None = None
) -> tuple[float, float]:
    """(precision, recall) of ``fake`` [n, d] against ``real`` [m, d] with k-nearest-neighbour manifolds."""
    device = torch.device(device) if device is not None else (real.device if isinstance(real, torch.Tensor) else "cpu")
    real_t, fake_t = _as_tensor(real, device), _as_tensor(fake, device)
    if real_t.ndim != 2 or fake_t.ndim != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"precision/recall need two [n, d] arrays of equal d, got {tuple(real_t.shape)} and {tuple(fake_t.shape)}")
    if min(len(real_t), len(fake_t)) <= k:
        raise ValueError(f"precision/recall with k={k} need more than {k} samples per set, got {len(real_t)} and {len(fake_t)}")
    precision = _inside(fake_t, real_t, _kth_neighbour_radii(real_t, k, block), block).double().mean()
    recall = _inside(real_t, fake_t, _kth_neighbour_radii(fake_t, k, block), block).double().mean()
    return float(precision), float(recall)


__all__ = ["precision_recall"]

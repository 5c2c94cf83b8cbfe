"""Latents from seeds, truncation, spherical interpolation.

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

import torch

TRUNCATION_MODES = ("truncnorm", "mean")
DEFAULT_TRUNCATION_MODE = "mean"  # the one default: Python calls, `sample` (SampleConfig) and the docs


def check_truncation(truncation: float | None, mode: str) -> None:
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
    seeds: list[int], z_dim: int, truncation: float | None = None, truncation_mode: str = DEFAULT_TRUNCATION_MODE
) -> torch.Tensor:
    """(len(seeds), z_dim) float32 on the CPU; row i depends on ``seeds[i]`` (and psi) only.
    In ``mean`` mode z is not truncated here (the generator applies psi)."""
    check_truncation(truncation, truncation_mode)
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

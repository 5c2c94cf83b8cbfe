"""Adaptive discriminator augmentation (ADA, Karras et al. 2020).

Every image D sees (reals and fakes, in both phases) goes through a chain of augmentations,
each applied to each image with probability ``p``. ``p`` follows the overfitting heuristic
``r_t = E[sign(D(real))]`` over the last ``loss.ada_interval`` steps (all processes): above
``loss.ada_target`` (0.6) D is too sure of the reals, ``p`` rises; below, it falls, by
``batch * interval / (loss.ada_kimg * 1000)`` per adjustment (``p`` can go from 0 to 1 in
``loss.ada_kimg`` thousand images). With ``p < 1`` the chain does not leak into the generated
images: a fraction of what D sees is never augmented, so G cannot satisfy D with augmented-looking
images.

The chain (``loss.ada_ops``): pixel blitting (``xflip``, ``rot90``, integer ``translation`` up to
1/8 of the side), geometric (``scale``: isotropic, log2-normal with sd 0.2; ``rotate``: uniform
angle), both done by one ``grid_sample`` with reflection padding, then ``color`` (brightness,
contrast, saturation) and ``cutout`` (a square of half the side), the latter two as in
DiffAugment (augment.py). Every draw comes from the step's random stream, and ``p`` and the sums
since the last adjustment are part of the train state: resume stays exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from maxvit_gan.training.augment import diff_augment

ADA_OPS = ("xflip", "rot90", "translation", "scale", "rotate", "color", "cutout")
DEFAULT_OPS = "xflip,rot90,translation,scale,rotate,color"


def parse_ops(ops: str) -> list[str]:
    out = [o.strip() for o in ops.split(",") if o.strip()]
    bad = [o for o in out if o not in ADA_OPS]
    if bad or not out:
        raise ValueError(f"loss.ada_ops: unknown or no augmentation(s) {bad or ops!r}; choose from {', '.join(ADA_OPS)}")
    return out


def _chosen(b: int, p: float, rng: torch.Generator) -> torch.Tensor:
    """Which of ``b`` images an op applies to (each with probability p)."""
    return torch.rand(b, generator=rng) < p


def _affine(b: int, p: float, ops: list[str], rng: torch.Generator, h: int) -> torch.Tensor | None:
    """Per-image 3x3 matrices (output -> input coordinates, normalised to [-1, 1]) of the
    geometric ops; None when no image got one."""
    eye = torch.eye(3).repeat(b, 1, 1)
    m, any_op = eye.clone(), False
    for op in ops:
        if op not in ("xflip", "rot90", "translation", "scale", "rotate"):
            continue
        sel = _chosen(b, p, rng)
        t = eye.clone()
        if op == "xflip":
            t[:, 0, 0] = 1 - 2 * (torch.rand(b, generator=rng) < 0.5).float()
        elif op == "rot90":
            k = torch.randint(0, 4, (b,), generator=rng).float() * (math.pi / 2)
            t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1] = k.cos().round(), -k.sin().round(), k.sin().round(), k.cos().round()
        elif op == "translation":  # whole pixels: 2/h per pixel in normalised units
            shift = torch.randint(-(h // 8), h // 8 + 1, (b, 2), generator=rng).float() * (2.0 / h)
            t[:, 0, 2], t[:, 1, 2] = shift[:, 0], shift[:, 1]
        elif op == "scale":
            s = torch.exp2(torch.randn(b, generator=rng) * 0.2)
            t[:, 0, 0], t[:, 1, 1] = s, s
        elif op == "rotate":
            a = (torch.rand(b, generator=rng) * 2 - 1) * math.pi
            t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
        t[~sel] = eye[~sel]
        any_op = any_op or bool(sel.any())
        m = m @ t
    return m if any_op else None


def ada_augment(x: torch.Tensor, p: float, ops: list[str], rng: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) in [-1, 1]; each op of ``ops`` applied to each image with probability p."""
    if p <= 0:
        return x
    b, _, h, w = x.shape
    m = _affine(b, p, ops, rng, h)
    if m is not None:
        moved = (m[:, :2] != torch.eye(3)[:2]).flatten(1).any(1).to(x.device)
        grid = F.affine_grid(m[:, :2].to(x.device, x.dtype), list(x.shape), align_corners=False)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        x = torch.where(moved[:, None, None, None], warped, x)
    for op in ("color", "cutout"):
        if op in ops:
            sel = _chosen(b, p, rng).to(x.device)
            x = torch.where(sel[:, None, None, None], diff_augment(x, [op], rng), x)
    return x


class AdaptiveAugment:
    """``p`` and the overfitting heuristic. Call :meth:`observe` with the logits of augmented
    reals each D micro-batch and :meth:`step_done` after each step (collective every
    ``interval`` steps)."""

    def __init__(self, target: float, speed_kimg: float, interval: int, batch_size: int, ops: str, device):
        self.target, self.speed_kimg, self.interval, self.batch_size = target, speed_kimg, interval, batch_size
        self.ops = parse_ops(ops)
        self.p = 0.0
        self.rt = None  # the last r_t (for the log)
        self._sums = torch.zeros(2, dtype=torch.float64, device=device)  # sum of sign(D(real)), count, since the last adjustment

    def augment(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return ada_augment(x, self.p, self.ops, rng)

    def observe(self, real_logits: torch.Tensor) -> None:
        s = real_logits.detach().float().sign()
        self._sums += torch.stack([s.sum().double(), torch.tensor(float(s.numel()), dtype=torch.float64, device=s.device)])

    def _total(self, accelerator) -> torch.Tensor:
        return accelerator.reduce(self._sums.clone(), reduction="sum") if accelerator.num_processes > 1 else self._sums.clone()

    def step_done(self, step: int, accelerator) -> None:
        """After step ``step`` (1-based count of steps done): adjust p every ``interval`` steps."""
        if step % self.interval:
            return
        total = self._total(accelerator)
        if total[1] > 0:
            self.rt = float(total[0] / total[1])
            delta = math.copysign(self.batch_size * self.interval / (self.speed_kimg * 1000), self.rt - self.target)
            self.p = min(max(self.p + (delta if self.rt != self.target else 0.0), 0.0), 1.0)
        self._sums.zero_()

    def state(self, accelerator) -> dict:
        """Collective: the state to checkpoint (the sums of all processes, so resume is exact)."""
        total = self._total(accelerator)
        return {"aug_p": self.p, "ada_sum": float(total[0]), "ada_count": float(total[1])}

    def load(self, state: dict, is_main: bool) -> None:
        self.p = float(state.get("aug_p", 0.0))
        if is_main:  # the sums of every process, kept by one: the next all-reduce adds them up as before
            self._sums[0], self._sums[1] = float(state.get("ada_sum", 0.0)), float(state.get("ada_count", 0.0))

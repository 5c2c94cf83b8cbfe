"""DiffAugment (Zhao et al. 2020): differentiable color, translation and cutout.

Every random draw comes from an explicit ``torch.Generator`` so that training with
augmentation resumes bit-exactly. Applied to reals and fakes alike (and inside the G loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    bad = [p for p in ops if p not in POLICIES]
    if bad:
        raise ValueError(f"loss.diffaug: unknown augmentation(s) {bad}; choose from {POLICIES}")
    return ops


def _rand(shape, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=gen).to(device)


def diff_augment(x: torch.Tensor, policy: list[str] | str, gen: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) in [-1, 1]; returns an augmented batch of the same shape."""
    ops = parse_policy(policy) if isinstance(policy, str) else policy
    b, _, h, w = x.shape
    dev = x.device
    for op in ops:
        if op == "color":
            x = x + (_rand((b, 1, 1, 1), gen, dev) - 0.5)  # brightness
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (_rand((b, 1, 1, 1), gen, dev) * 2) + mean  # saturation
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (_rand((b, 1, 1, 1), gen, dev) + 0.5) + mean  # contrast
        elif op == "translation":  # shift by up to 1/8 of the side, zero padding
            sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
            ty = torch.randint(-sh, sh + 1, (b, 1, 1), generator=gen).to(dev)
            tx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=gen).to(dev)
            gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
            gy = (gy[None] + ty + 1).clamp(0, h + 1)
            gx = (gx[None] + tx + 1).clamp(0, w + 1)
            padded = F.pad(x, (1, 1, 1, 1))
            idx = (gy * (w + 2) + gx).view(b, 1, h * w).expand(-1, x.shape[1], -1)
            x = padded.flatten(2).gather(2, idx).view_as(x)
        elif op == "cutout":  # zero a square of half the side at a random place
            ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
            oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=gen).to(dev)
            ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=gen).to(dev)
            gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
            dy, dx = gy[None] - oy + ch // 2, gx[None] - ox + cw // 2
            inside = (dy >= 0) & (dy < ch) & (dx >= 0) & (dx < cw)
            x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x

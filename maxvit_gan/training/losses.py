"""GAN losses and regularizers. Pure functions of logits / tensors; no optimizer here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("nonsaturating", "hinge")


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss (mean over the batch)."""
    if kind == "nonsaturating":  # logistic: softplus(-D(x)) + softplus(D(G(z)))
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"loss.kind: unknown loss {kind!r}; choose one of {LOSSES}")


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss (mean over the batch)."""
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"loss.kind: unknown loss {kind!r}; choose one of {LOSSES}")


def r1_penalty(real_logits: torch.Tensor, reals: torch.Tensor, scaler=None) -> torch.Tensor:
    """Per-sample squared gradient norm |grad_x D(x)|^2, shape (B,).

    Uses ``torch.autograd.grad`` w.r.t. the input (never ``backward(create_graph=True)``:
    that would fire DDP's gradient hooks twice). Under fp16, the output is scaled before the
    gradient and unscaled after, so small gradients do not underflow.
    """
    out = real_logits.sum()
    if scaler is not None:
        out = scaler.scale(out)
    (grad,) = torch.autograd.grad(out, reals, create_graph=True, only_inputs=True)
    if scaler is not None:
        grad = grad / scaler.get_scale()
    return grad.float().square().sum(dim=(1, 2, 3))


def consistency_loss(logits: torch.Tensor, logits_aug: torch.Tensor) -> torch.Tensor:
    """Consistency regularization (bCR): D should give the same logit to x and aug(x)."""
    return (logits - logits_aug).square().mean()

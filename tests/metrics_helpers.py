"""Small stand-ins for the metrics tests: a tiny fixed feature extractor, a tiny generator, tiny datasets."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyExtractor(nn.Module):
    """Fixed random conv + pool: uint8 [B,3,H,W] -> features float64 [B,dim], logits [B,num_logits].

    Implements the extractor protocol of maxvit_gan.metrics.features (mode, dim, network_id).
    """

    mode = "tiny"

    def __init__(self, dim: int = 48, num_logits: int = 10, seed: int = 123):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dim = dim
        self.network_id = f"tiny-{dim}-{seed}"
        self.register_buffer("w", torch.randn(dim, 3, 3, 3, generator=g) * 0.3)
        self.register_buffer("head", torch.randn(num_logits, dim, generator=g) * 0.5)
        self.calls = 0
        self.images_seen = 0

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict:
        assert images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3
        self.calls += 1
        self.images_seen += images.shape[0]
        x = (images.double() - 128) / 128
        h = F.relu(F.conv2d(x, self.w.double(), stride=2))
        feats = F.adaptive_avg_pool2d(h, 1).flatten(1) + 0.1 * F.adaptive_max_pool2d(h, 1).flatten(1)
        return {"features": feats, "logits": (feats @ self.head.double().T).float()}


class TinyGenerator(nn.Module):
    """z [b, z_dim], labels [b] or None -> images [b,3,R,R] in ~[-1.2, 1.2] (some clipping)."""

    def __init__(self, z_dim: int = 8, num_classes: int = 3, resolution: int = 16, seed: int = 7):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.z_dim, self.num_classes, self.resolution = z_dim, num_classes, resolution
        self.register_buffer("proj", torch.randn(z_dim, 3 * resolution * resolution, generator=g) * 0.4)
        self.register_buffer(
            "emb", torch.randn(max(num_classes, 1), 3 * resolution * resolution, generator=g) * 0.3
        )
        self.seen_labels: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor, labels) -> torch.Tensor:
        assert z.dtype == torch.float32 and z.shape[1] == self.z_dim
        x = z @ self.proj
        if self.num_classes > 0:
            assert labels is not None and labels.dtype == torch.int64
            self.seen_labels.append(labels.clone())
            x = x + self.emb[labels]
        else:
            assert labels is None
        return (1.2 * torch.tanh(x)).view(-1, 3, self.resolution, self.resolution)


class TinyImages(torch.utils.data.Dataset):
    """Deterministic random uint8 images [3,R,R] with labels; ``images`` can be edited in place."""

    def __init__(self, n: int = 9, resolution: int = 16, seed: int = 3, num_classes: int = 3):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, resolution, resolution), generator=g, dtype=torch.uint8)
        self.labels = torch.arange(n) % num_classes

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])

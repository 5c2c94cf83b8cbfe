"""The random streams of a run, which make resume exact.

Every random draw of a training step (latents, fake labels, flips, augmentation) comes from a
``torch.Generator`` seeded by (seed, rank, step, stream): nothing depends on what ran before in
the process, so a resumed run draws what an uninterrupted one would have drawn. The data order
comes from (seed, epoch): :class:`EpochSampler` is one rank's share of one epoch's permutation,
from a position on (mid-epoch resume). The global RNG is never used (creating a DataLoader
iterator draws from it).
"""

from __future__ import annotations

import numpy as np
import torch


def step_rng(seed: int, rank: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, rank, step, stream)."""
    state = np.random.SeedSequence([seed, rank, step, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class EpochSampler(torch.utils.data.Sampler):
    """This rank's share of epoch ``epoch``'s permutation, from sample ``start`` on.

    The permutation depends on (seed, epoch) only; rank r takes positions r, r+W, ...
    (every rank gets the same count, the remainder is dropped).
    """

    def __init__(self, n: int, rank: int, world: int, seed: int, epoch: int, start: int = 0):
        self.per_rank = n // world
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        self.indices = perm[rank : self.per_rank * world : world][start:].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)

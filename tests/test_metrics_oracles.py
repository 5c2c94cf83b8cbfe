"""Our metrics against independent implementations: precision/recall against a brute-force
reading of the definition, FID and KID against torchmetrics given the same features."""

import numpy as np
import pytest
import torch
from metrics_helpers import TinyExtractor, TinyImages

from maxvit_gan.metrics import compute_dataset_stats, compute_metrics, precision_recall


def _brute_force_pr(real, fake, k=3):
    """Kynkaanniemi et al. 2019 as written: sample x is inside set S if |x - s| <= r_k(s) for some s in S,
    r_k(s) = distance from s to its k-th nearest neighbour in S (s itself excluded)."""

    def inside(probes, manifold):
        d_mm = np.linalg.norm(manifold[:, None] - manifold[None], axis=-1)
        radii = np.sort(d_mm, axis=1)[:, k]  # column 0 is the point itself
        d_pm = np.linalg.norm(probes[:, None] - manifold[None], axis=-1)
        return (d_pm <= radii[None]).any(axis=1).mean()

    return inside(fake, real), inside(real, fake)


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_precision_recall_matches_the_definition(shift):
    rng = np.random.default_rng(0)
    real = rng.standard_normal((120, 8))
    fake = np.concatenate([rng.standard_normal((60, 8)) * 1.5 + shift, rng.standard_normal((40, 8)) * 0.3])
    ours = precision_recall(real, fake, k=3, block=32)
    assert ours == pytest.approx(_brute_force_pr(real, fake), abs=1e-12)


def test_precision_recall_extremes_and_errors():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)
    mode = rng.standard_normal((50, 4)) * 0.05  # collapsed fakes inside the real cloud: precise, no recall
    p, r = precision_recall(x * 2, mode)
    assert p == 1.0 and r < 0.3
    with pytest.raises(ValueError, match="more than 3 samples"):
        precision_recall(x[:3], x)
    with pytest.raises(ValueError, match="equal d"):
        precision_recall(x, x[:, :2])


class _Features(torch.nn.Module):
    """torchmetrics takes a module that maps uint8 images to features: the tiny extractor's features."""

    def __init__(self):
        super().__init__()
        self.net = TinyExtractor()

    def forward(self, images):
        return self.net(images)["features"]


def test_fid_and_kid_agree_with_torchmetrics():
    tm_image = pytest.importorskip("torchmetrics.image")
    real, fake = TinyImages(n=40, seed=3), TinyImages(n=30, seed=4)
    fake.images = (fake.images.float() * 0.6 + 40).to(torch.uint8)  # a different distribution
    ext = TinyExtractor()
    ours = compute_metrics(
        compute_dataset_stats(fake, ext, batch_size=16, progress=False),
        compute_dataset_stats(real, ext, batch_size=16, progress=False),
        kid_subsets=1, kid_subset_size=30,  # one subset of all 30 fakes and 30 of the reals
    )  # fmt: skip
    fid = tm_image.FrechetInceptionDistance(feature=_Features())
    fid.update(real.images, real=True)
    fid.update(fake.images, real=False)
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-6)
    # KID: a single subset of size n is every sample, whatever the draw, so the two must agree
    kid = tm_image.KernelInceptionDistance(feature=_Features(), subsets=1, subset_size=30)
    kid.update(fake.images, real=False)
    kid.update(real.images[:30], real=True)
    real30 = TinyImages(n=40, seed=3)
    real30.images = real30.images[:30]
    ours30 = compute_metrics(
        compute_dataset_stats(fake, ext, progress=False), compute_dataset_stats(real30, ext, progress=False),
        kid_subsets=1, kid_subset_size=30,
    )  # fmt: skip
    assert ours30["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-6)

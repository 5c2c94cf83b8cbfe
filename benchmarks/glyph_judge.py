"""The glyph judge: a small CNN that reads which letter (A-Z) a 32-px glyph image shows.

    PYTHONPATH=. python benchmarks/real_datasets.py judge     # train or load; print its accuracy

It scores class-conditional generators trained on the glyphs dataset (``real_datasets.py``):
``score(judge, images, labels)`` is the share of generated images that it reads as the letter
that was asked for, overall and per class. It trains on the ``judge_train`` fonts only (never
on the generator's ``gan_train`` fonts), with augmentation that a handful of fonts needs to
generalise: random affine warps (scale, rotation, shear = italics, shift), thicker or thinner
strokes, blur, contrast and noise (generated images are noisier than renders). It reads
luminance only (the mean of R, G, B), so a colour cast does not change its answer.

Training is deterministic (fixed seed, one thread, CPU) and cached in benchmarks/out/ under
a key made of this file's bytes, the training zip's content hash and the seed: changing the
code or the data retrains, nothing else does. Its class order is the zip's label order
(``class_names`` of dataset.json), checked against the generator's zip when loaded.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RES = 32
STEPS, BATCH, LR = 1500, 64, 2e-3


class GlyphJudge(nn.Module):
    """(B, 3, 32, 32) in [-1, 1] -> logits over ``len(class_names)`` letters."""

    def __init__(self, class_names: list[str]):
        super().__init__()
        self.class_names = list(class_names)
        self.convs = nn.Sequential(
            nn.Conv2d(1, 24, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(48, 96, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc = nn.Linear(96 * 16, 128)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(128, len(self.class_names))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 128) before the ReLU: a feature space for a glyph FID, if one is wanted."""
        return self.fc(self.convs(x.mean(1, keepdim=True)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(F.relu(self.features(x))))


# --------------------------------------------------------------------------- data


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, 32, 32), or float in [-1, 1] (quantised to uint8 first, like every saved
    image, so both give the same answer) -> float in [-1, 1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (3, RES, RES):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: expected a tensor (N, 3, {RES}, {RES}), got {shape}")
    if images.dtype != torch.uint8:
        images = (images.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return images.float() / 127.5 - 1


def load_zip(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """A prepared glyph zip: uint8 images (N, 3, 32, 32), int64 labels, class names, content hash."""
    from maxvit_gan.data import ZipDataset

    ds = ZipDataset(str(path), resolution=RES)
    if not ds.class_names:
        raise ValueError(f"{path}: has no class labels (dataset.json class_names)")
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs), torch.stack(ys).long(), list(ds.class_names), ds.content_hash


def augment(ink: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random variants of glyphs given as ink in [0, 1] (B, 1, H, W), 0 = paper."""
    b = ink.shape[0]

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(b, *shape, generator=g)

    ang, scale, shear = u(-0.14, 0.14), u(0.8, 1.1), u(-0.3, 0.3)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear * cos, u(-0.12, 0.12)], 1), torch.stack([sin, cos + shear * sin, u(-0.12, 0.12)], 1)], 1
    )  # fmt: skip
    grid = F.affine_grid(theta, list(ink.shape), align_corners=False)
    x = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    a = u(-0.6, 0.6, 1, 1, 1)  # > 0: thicker strokes (toward a 3x3 max), < 0: thinner (toward a 3x3 min)
    grown, shrunk = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
    x = torch.where(a > 0, x + a * (grown - x), x + a * (x - shrunk))
    blur = u(0, 0.6, 1, 1, 1) * (torch.rand(b, 1, 1, 1, generator=g) < 0.4)
    x = x + blur * (F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) - x)
    x = x * u(0.6, 1.0, 1, 1, 1) + u(-0.05, 0.15, 1, 1, 1)  # contrast, paper tone
    x = x + u(0, 0.08, 1, 1, 1) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


# --------------------------------------------------------------------------- training


def cache_key(train_hash: str, seed: int) -> str:
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return hashlib.sha256(f"{code}\0{train_hash}\0{seed}\0{STEPS}".encode()).hexdigest()[:16]


def train(x: torch.Tensor, y: torch.Tensor, class_names: list[str], seed: int = 0, steps: int = STEPS,
          batch: int = BATCH) -> GlyphJudge:  # fmt: skip
    """Train on uint8 glyphs (N, 3, 32, 32) and labels; deterministic for a seed (one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        net = GlyphJudge(class_names)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.15)
        g = torch.Generator().manual_seed(seed)
        ink = (255 - x.float().mean(1, keepdim=True)) / 255
        net.train()
        for _ in range(steps):
            idx = torch.randint(len(x), (batch,), generator=g)
            xb = 1 - 2 * augment(ink[idx], g)  # back to [-1, 1], white paper
            loss = F.cross_entropy(net(xb.expand(-1, 3, -1, -1)), y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        return net.eval()
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def score(judge: GlyphJudge, images: torch.Tensor, labels) -> dict:
    """Share of ``images`` (uint8 (N, 3, 32, 32) or float in [-1, 1]) that ``judge`` reads as
    their requested ``labels`` (ints, label ids of the glyph zip): ``{"acc": float,
    "per_class": {name: float or None (no image asked for it)}, "n": N}``."""
    x = as_float(images)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    k = len(judge.class_names)
    if len(labels) != len(x):
        raise ValueError(f"labels: {len(labels)} for {len(x)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels: must lie in 0..{k - 1}, got {labels.min().item()}..{labels.max().item()}")
    judge.eval()
    pred = torch.cat([judge(xb).argmax(1) for xb in x.split(500)]) if len(x) else labels
    right = pred == labels
    per = {
        name: (right[labels == c].float().mean().item() if (labels == c).any() else None)
        for c, name in enumerate(judge.class_names)
    }
    return {"acc": right.float().mean().item() if len(x) else float("nan"), "per_class": per, "n": len(x)}


def load_or_train(
    train_zip: Path, seed: int = 0, out: Path = OUT, force: bool = False, log=print
) -> GlyphJudge:
    """The judge trained on ``train_zip`` (the judge_train glyphs), from the cache in ``out`` when
    its key matches, else trained (about 1-2 minutes on one core) and cached."""
    x, y, names, content_hash = load_zip(train_zip)
    key = cache_key(content_hash, seed)
    weights, info = out / f"glyph_judge_{key}.pt", out / f"glyph_judge_{key}.json"
    net = GlyphJudge(names)
    if weights.is_file() and info.is_file() and not force:
        net.load_state_dict(torch.load(weights, weights_only=True))
        if json.loads(info.read_text())["class_names"] != names:
            raise ValueError(f"{info}: class names differ from {train_zip}'s; delete it to retrain")
        return net.eval()
    t0 = time.perf_counter()
    net = train(x, y, names, seed, steps=STEPS)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), weights)
    info.write_text(json.dumps({"class_names": names, "train_zip": str(train_zip), "train_hash": content_hash,
                                "seed": seed, "steps": STEPS, "train_images": len(x), "train_s": seconds}, indent=1))  # fmt: skip
    log(f"glyph judge: trained on {len(x)} images in {seconds:.0f} s -> {weights}")
    return net


def check_classes(judge: GlyphJudge, zip_path: Path) -> None:
    """Raise unless the judge's class order is ``zip_path``'s label order."""
    from real_datasets import zip_class_names

    names = zip_class_names(zip_path)
    if names != judge.class_names:
        raise ValueError(f"{zip_path}: class_names {names} differ from the judge's {judge.class_names}")


def main_judge(real_out: Path, force: bool = False, seed: int = 0) -> dict:
    """Train (or load) the judge on the built judge_train zip; print and return its accuracy on
    judge_test and on gan_train (fonts it never saw either), overall and per class."""
    from real_datasets import zip_paths

    zips = zip_paths(real_out)
    for name in ("glyphs32_judge_train", "glyphs32_judge_test", "glyphs32_gan_train"):
        if not zips[name].is_file():
            raise SystemExit(
                f"{zips[name]} is missing: run `python benchmarks/real_datasets.py build --only glyphs` first"
            )
    t0 = time.perf_counter()
    judge = load_or_train(zips["glyphs32_judge_train"], seed=seed, out=real_out.parent, force=force)
    check_classes(judge, zips["glyphs32_gan_train"])
    report = {"seconds": time.perf_counter() - t0}
    for part in ("judge_test", "gan_train"):
        x, y, names, _ = load_zip(zips[f"glyphs32_{part}"])
        if names != judge.class_names:
            raise ValueError(f"{zips[f'glyphs32_{part}']}: class_names differ from the judge's")
        s = score(judge, x, y)
        worst = min(s["per_class"], key=lambda c: s["per_class"][c])
        print(f"glyph judge on {part} ({s['n']} images): accuracy {s['acc']:.4f}, worst class {worst} "
              f"{s['per_class'][worst]:.2f}")  # fmt: skip
        wrong = {c: round(a, 3) for c, a in s["per_class"].items() if a < 1}
        print(f"  classes under 1.0: {wrong or 'none'}")
        report[part] = s
    return report

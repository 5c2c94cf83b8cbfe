"""Adaptive augmentation (training/ada.py): the augmentations, the controller of p, p in the
train state (exact resume), and the heuristic on a tiny and a large dataset."""

import json

import pytest
import torch
from train_utils import fresh_trainer, model_state, run_config

from maxvit_gan.data import ShapesDataset
from maxvit_gan.training.ada import AdaptiveAugment, ada_augment, parse_ops


class _OneProcess:
    num_processes = 1


def test_p_follows_the_sign_of_d_on_reals():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=2, batch_size=10, ops="xflip", device="cpu")
    step = 10 * 2 / 1000  # batch * interval / (speed_kimg * 1000)
    for s in range(1, 5):  # D sure of the reals: r_t = 0.8 > 0.6
        ada.observe(torch.tensor([1.0] * 9 + [-1.0]))
        ada.step_done(s, _OneProcess())
    assert ada.rt == pytest.approx(0.6 + 0.2) and ada.p == pytest.approx(2 * step)  # adjusted at steps 2 and 4 only
    for s in range(5, 13):  # unsure: r_t = 0 -> p falls, and stops at 0
        ada.observe(torch.tensor([1.0, -1.0]))
        ada.step_done(s, _OneProcess())
    assert ada.rt == 0 and ada.p == 0.0


def test_augmentations_apply_with_probability_p_and_keep_gradients():
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    ops = parse_ops("xflip,rot90,translation,scale,rotate,color,cutout")
    assert torch.equal(ada_augment(x, 0.0, ops, torch.Generator().manual_seed(0)), x)
    a = ada_augment(x, 0.5, ops, torch.Generator().manual_seed(1))
    b = ada_augment(x, 0.5, ops, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # the step's random stream decides everything
    changed = (a - x).flatten(1).abs().amax(1) > 1e-6
    assert 0 < changed.sum() < 64  # some images untouched (leaks nothing), some augmented
    flips = ada_augment(x, 1.0, ["xflip"], torch.Generator().manual_seed(2))
    assert all(torch.allclose(f, o, atol=1e-5) or torch.allclose(f, o.flip(2), atol=1e-5) for f, o in zip(flips, x))
    xg = x.clone().requires_grad_(True)
    ada_augment(xg, 1.0, ops, torch.Generator().manual_seed(3)).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0  # G learns through the augmentations
    with pytest.raises(ValueError, match="loss.ada_ops"):
        parse_ops("xflip,blur")


FAST = ["train.kimg=0.064", "train.checkpoint_kimg=0.032", "train.grid_kimg=1", "train.tick_kimg=0.032",
        "loss.ada_target=0.05", "loss.ada_kimg=0.1", "loss.ada_interval=3"]  # fmt: skip


def test_p_is_part_of_the_train_state_and_resume_is_exact(tmp_path):
    straight = fresh_trainer(run_config(tmp_path / "straight", *FAST))
    straight.train()
    fresh_trainer(run_config(tmp_path / "halves", *FAST, "train.kimg=0.032")).train()  # stops at step 4, mid-interval
    state = json.loads(next((tmp_path / "halves" / "checkpoints").glob("step-*/train_state.json")).read_text())
    assert {"aug_p", "ada_sum", "ada_count"} <= state.keys() and state["ada_count"] == 8  # step 4's reals, since step 3
    resumed = fresh_trainer(run_config(tmp_path / "halves", *FAST, "resume=auto"))
    resumed.train()
    assert straight.ada.p > 0 and resumed.ada.p == straight.ada.p
    a, b = model_state(straight), model_state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["aug_p"] == pytest.approx(straight.ada.p)


def _highest_p(tmp_path, num_images: int) -> float:
    """Train D against "fakes" that are fresh images of the real distribution: only a D that
    memorises its training images can tell them apart (the overfitting ADA measures)."""
    pool = ShapesDataset(16, 1024, 4, seed=123, conditional=False)
    bank = torch.stack([pool[i][0] for i in range(len(pool))]).float() / 127.5 - 1
    cfg = run_config(tmp_path, f"data.shapes_num_images={num_images}", "data.resolution=16", "data.conditional=false",
                     "data.xflip=false", "train.kimg=1.0", "train.tick_kimg=1.0", "train.checkpoint_kimg=100",
                     "train.grid_kimg=100", "loss.r1_gamma=0", "loss.ada_target=0.6", "loss.ada_kimg=0.25", "optim.d_lr=2e-4")  # fmt: skip
    t = fresh_trainer(cfg)
    draw, anchor = torch.Generator().manual_seed(0), next(t.G.parameters())  # G's graph kept, its cost not
    t.G.forward = lambda z, c=None, **k: bank[torch.randint(0, len(bank), (len(z),), generator=draw)] + 0 * anchor.sum()
    seen, step_done = [], t.ada.step_done
    t.ada.step_done = lambda *a: (step_done(*a), seen.append(t.ada.p))
    t.train()
    return max(seen)


def test_p_rises_on_a_tiny_dataset_and_stays_near_zero_on_a_large_one(tmp_path):
    assert _highest_p(tmp_path / "tiny", 8) >= 0.25
    assert _highest_p(tmp_path / "large", 50000) <= 0.02

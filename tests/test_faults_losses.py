"""Fault injection, subject: losses that are not finite (train.nan_policy). What belongs here: a
NaN or inf in a loss, what the run does (stop naming the step, or skip up to
train.max_skipped_steps) and that no damaged weights are saved."""

from __future__ import annotations

import pytest
import torch
from fault_utils import tree_hash
from train_utils import fresh_trainer, run_config

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.training import trainer as trainer_mod
from maxvit_gan.training.trainer import NonFiniteLossError


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    fresh_trainer(run_config(tmp_path, "train.kimg=0.016")).train()  # 2 steps, checkpoint at step 2
    good = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    before = tree_hash(good)
    real_d_loss = trainer_mod.d_loss
    monkeypatch.setattr(trainer_mod, "d_loss", lambda *a: real_d_loss(*a) * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss_D .* at step 2"):
        fresh_trainer(run_config(tmp_path, "train.kimg=0.032", "resume=auto")).train()
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == [good]
    assert tree_hash(good) == before


def test_non_finite_loss_skip_policy_counts_and_gives_up(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_g_loss = trainer_mod.g_loss

    def flaky(*a):  # every other G loss is NaN
        calls["n"] += 1
        return real_g_loss(*a) * (float("nan") if calls["n"] % 2 else 1.0)

    monkeypatch.setattr(trainer_mod, "g_loss", flaky)
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.016", "train.nan_policy=skip", "train.max_skipped_steps=5"))
    t.train()
    assert t.state["skipped_steps"] == 2 and t.state["nimg"] == 16
    for p in t.ema.module.parameters():
        assert torch.isfinite(p).all()
    monkeypatch.setattr(trainer_mod, "g_loss", lambda *a: real_g_loss(*a) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="max_skipped_steps"):
        fresh_trainer(run_config(tmp_path / "b", "train.kimg=0.016", "train.nan_policy=skip", "train.max_skipped_steps=3")).train()

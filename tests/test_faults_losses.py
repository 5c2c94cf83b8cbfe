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


# ----------------------------------------------------------------------------- blow-ups with finite losses


def test_a_blow_up_with_finite_losses_stops_and_keeps_the_good_checkpoints(tmp_path, monkeypatch, capsys):
    """loss_D 1e17 (finite) at step 3, then from step 5 on; a tick and a checkpoint every step, two
    kept. Step 3 (one tick beyond train.divergence_bound) writes no checkpoint; training goes on
    and step 4 does; three ticks in a row beyond it stop the run at step 7, and the checkpoints
    of steps 5-7 that would have pruned the good ones are never written."""
    from fault_utils import checkpoint_names

    real_step = trainer_mod.Trainer.train_step

    def blowing_up(self, images, labels):
        stats = real_step(self, images, labels)
        if self.state["step"] == 3 or self.state["step"] >= 5:
            stats["loss_D"] = torch.full_like(stats["loss_D"], 1e17)
        return stats

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", blowing_up)
    cfg = run_config(tmp_path, "train.kimg=0.08", "train.tick_kimg=0.008", "train.checkpoint_kimg=0.008",
                     "train.keep_checkpoints=2", "train.grid_kimg=1")  # fmt: skip
    with pytest.raises(RuntimeError, match=r"training diverged: loss_D 1e\+17 beyond train.divergence_bound=1000 "
                                           r"for 3 ticks in a row at step 7 .*the newest is .*step-000000004"):  # fmt: skip
        fresh_trainer(cfg).train()
    assert checkpoint_names(tmp_path) == ["step-000000002", "step-000000004"]
    assert "no checkpoint at step 3: loss_D beyond train.divergence_bound=1000" in capsys.readouterr().out


def test_a_stop_during_a_blow_up_says_which_checkpoint_is_kept(tmp_path, monkeypatch, capsys):
    import os
    import signal

    from fault_utils import checkpoint_names

    real_step = trainer_mod.Trainer.train_step

    def blowing_up(self, images, labels):  # beyond the bound from step 3; SIGTERM during step 4
        if self.state["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        stats = real_step(self, images, labels)
        if self.state["step"] >= 3:
            stats["loss_D"] = torch.full_like(stats["loss_D"], 1e17)
        return stats

    monkeypatch.setattr(trainer_mod.Trainer, "train_step", blowing_up)
    cfg = run_config(tmp_path, "train.kimg=0.08", "train.tick_kimg=0.008", "train.checkpoint_kimg=0.008", "train.grid_kimg=1")
    assert fresh_trainer(cfg).train()["stopped"]
    assert checkpoint_names(tmp_path) == ["step-000000001", "step-000000002"]
    out = capsys.readouterr().out
    assert "Stop requested at step 4: no checkpoint written, the newest is " in out and "step-000000002; exiting." in out
    assert "checkpoint saved" not in out

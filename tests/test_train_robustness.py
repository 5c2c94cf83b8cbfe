"""Non-finite losses, preemption signals and atomic checkpoints."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_utils import fresh_trainer, run_config

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.training import trainer as trainer_mod
from maxvit_gan.training.trainer import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[1]


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    fresh_trainer(run_config(tmp_path, "train.kimg=0.016")).train()  # 2 steps, checkpoint at step 2
    good = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    before = _tree_hash(good)
    real_d_loss = trainer_mod.d_loss
    monkeypatch.setattr(trainer_mod, "d_loss", lambda *a: real_d_loss(*a) * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss_D .* at step 2"):
        fresh_trainer(run_config(tmp_path, "train.kimg=0.032", "resume=auto")).train()
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == [good]
    assert _tree_hash(good) == before


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


def test_interrupted_save_leaves_previous_checkpoint_whole(tmp_path, monkeypatch):
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.016"))
    t.train()
    good = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    before = _tree_hash(good)

    def crash(*a, **k):
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(t.accelerator, "save_state", crash)
    t.state["step"] += 1
    with pytest.raises(KeyboardInterrupt):
        t.save()
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == [good] and _tree_hash(good) == before
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints") == good  # the partial .tmp-* is never picked


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "scripts/train_gan.py", "experiment=smoke", "train.kimg=100",
                             "train.log_with=none", f"hydra.run.dir={run}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text()):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert "Stop requested" in out
    state = json.loads((ckpt.latest_checkpoint(run / "checkpoints") / "train_state.json").read_text())
    assert 0 < state["step"] < 100000 / 8

"""Training: the smoke run end to end and resumed, bit-exact resume with 1 and 2 processes, the
auxiliary class loss, the learning-rate ramp. (Configurations refused before training:
tests/test_faults_config.py.)"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_utils import (
    ACCELERATE_LAUNCH,
    ROOT,
    TWO_PROCESSES,
    fresh_trainer,
    model_state,
    run_config,
    subprocess_env,
)

from maxvit_gan.models.pretrained import read_generator_metadata

FAST = ["experiment=smoke", "train.kimg=0.064", "train.checkpoint_kimg=0.032", "train.grid_kimg=1",
        "train.tick_kimg=0.032", "train.log_with=none"]  # fmt: skip


def _launch_two(args):
    """`accelerate launch` of two CPU processes running ARGS."""
    proc = subprocess.run([*ACCELERATE_LAUNCH, *TWO_PROCESSES, *args], cwd=ROOT, env=subprocess_env(two_procs=True),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


def _weights(out_dir, rank=0):
    return load_file(str(Path(out_dir) / f"rank{rank}.safetensors"))


def _assert_same(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


def _rows(text):
    return [json.loads(s) for s in text.splitlines()]


@pytest.mark.slow
def test_smoke_run_then_resume_auto(smoke_run):
    """conftest.smoke_run: `experiment=smoke` under `accelerate launch`, then resume=auto to a longer run."""
    run, first = smoke_run.path, smoke_run.after_first
    for f in ["config_resolved.yaml", "metrics.jsonl", "generator_ema.safetensors", "samples/reals.png",
              "samples/fakes00000.000.png", "samples/fakes00000.064.png"]:  # fmt: skip
        assert f in first["files"], f
    assert [f for f in first["files"] if f.startswith("tensorboard/")]
    ckpts = sorted({f.split("/")[1] for f in first["files"] if f.startswith("checkpoints/")})
    assert ckpts == ["step-000000004", "step-000000008"]
    lines = _rows(first["metrics"])
    assert [round(r["kimg"], 3) for r in lines] == [0.016, 0.032, 0.048, 0.064]
    assert all(r["loss_D"] == r["loss_D"] for r in lines)  # not NaN
    # continue to a longer run: appends to metrics.jsonl, keeps the newest 2 checkpoints
    assert "Resuming at kimg 0.064" in smoke_run.resumed.stdout + smoke_run.resumed.stderr
    lines = _rows((run / "metrics.jsonl").read_text())
    assert [round(r["kimg"], 3) for r in lines][-2:] == [0.08, 0.096] and len(lines) == 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000008", "step-000000012"]
    meta = read_generator_metadata(run / "generator_ema.safetensors")
    assert meta["step"] == "12"
    assert not list(smoke_run.cwd.iterdir())  # everything went to the run directory


_state = model_state


def test_resume_is_bit_exact_one_process(tmp_path):
    aug = "loss.diffaug='color,translation,cutout'"  # augmentation draws must resume exactly too
    straight = fresh_trainer(run_config(tmp_path / "straight", *FAST, aug))
    straight.train()
    half = fresh_trainer(run_config(tmp_path / "halves", *FAST, aug, "train.kimg=0.032"))
    half.train()
    first_half = _state(half)
    resumed = fresh_trainer(run_config(tmp_path / "halves", *FAST, aug, "resume=auto"))
    resumed.train()
    assert resumed.state["step"] == straight.state["step"] == 8
    a, b = _state(straight), _state(resumed)
    _assert_same(a, b)
    assert not torch.equal(a["G.input.weight"], first_half["G.input.weight"])  # it did train on


def test_auxiliary_class_loss_is_trained_and_logged(tmp_path):
    cfg = run_config(tmp_path, *FAST, "train.kimg=0.016", "loss.class_weight=1")  # 2 steps
    trainer = fresh_trainer(cfg)
    D = trainer.accelerator.unwrap_model(trainer.D)
    head0 = D.class_head.weight.detach().clone()
    trainer.train()
    assert not torch.equal(head0, D.class_head.weight)  # D learns to classify reals
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    # untrained: about ln(4) = 1.39 for both; G's side is what pushes fakes towards their class
    assert 0.5 < rec["cls_D"] < 5 and 0.5 < rec["cls_G"] < 5


def test_lr_rampdown_falls_linearly_over_the_last_kimg(tmp_path):
    # 8 steps of 8 images; the last 32 images ramp down: steps at 40, 48, 56 images run at 3/4, 1/2, 1/4
    cfg = run_config(tmp_path, *FAST, "optim.lr_rampdown_kimg=0.032", "optim.g_lr=2e-3", "optim.d_lr=1e-3")
    trainer = fresh_trainer(cfg)
    seen = []
    step = trainer.train_step

    def recording_step(images, labels):
        out = step(images, labels)
        seen.extend([trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]])
        return out

    trainer.train_step = recording_step
    trainer.train()
    scale = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert seen == pytest.approx([lr * f for f in scale for lr in (2e-3, 1e-3)])
    constant = fresh_trainer(run_config(tmp_path / "constant", *FAST))
    from maxvit_gan.training.schedules import lr_scale

    at = lambda t: lr_scale(t.cfg.optim, t.cfg.train.kimg, t.state["nimg"])  # noqa: E731
    assert at(constant) == 1.0 and at(trainer) == 0.0  # at the end of the ramp
    constant.lock.release()


def test_class_weight_is_ignored_with_a_warning_on_unconditional_data(tmp_path):
    cfg = run_config(tmp_path, *FAST, "train.kimg=0.008", "data.conditional=false", "loss.class_weight=0.3")
    with pytest.warns(UserWarning, match=r"loss.class_weight=0.3 ignored"):
        trainer = fresh_trainer(cfg)
    assert trainer.accelerator.unwrap_model(trainer.D).class_head is None
    trainer.train()
    assert "cls_D" not in json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow
def test_two_processes_stay_in_sync_and_resume_bit_exact(tmp_path):
    """8 steps straight with 2 processes == the same run's step-4 checkpoint resumed by 2 new processes.

    The first half is the straight run's own step-4 checkpoint (a run told to stop at step 4 writes
    the same one: nothing before step 4 depends on train.kimg at a constant learning rate); resuming
    from a checkpoint that ended a run is checked bit for bit by test_resume_is_bit_exact_one_process
    and tests/test_generator_kinds.py."""
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    worker = str(ROOT / "tests" / "_train_worker.py")
    _launch_two([worker, str(straight / "w"), *FAST, f"run_dir={straight}"])
    r0, r1 = _weights(straight / "w", 0), _weights(straight / "w", 1)
    _assert_same(r0, r1)  # G, D and EMA identical across ranks
    shutil.copytree(straight, halves, ignore=shutil.ignore_patterns("w", "step-000000008"))
    assert sorted(p.name for p in (halves / "checkpoints").iterdir()) == ["step-000000004"]
    _launch_two([worker, str(halves / "w"), *FAST, "resume=auto", f"run_dir={halves}"])
    _assert_same(r0, _weights(halves / "w", 0))
    _assert_same(r0, _weights(halves / "w", 1))

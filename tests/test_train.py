"""Training: the smoke run end to end, resume, 2-process runs, bit-exact resume, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_utils import fresh_trainer, model_state, run_config

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TWO_PROCS = [
    "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
    "--dynamo_backend", "no", "--main_process_port", "0",
]  # fmt: skip
FAST = ["experiment=smoke", "train.kimg=0.064", "train.checkpoint_kimg=0.032", "train.grid_kimg=1",
        "train.tick_kimg=0.032", "train.log_with=none"]  # fmt: skip


def _env(two_procs=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if two_procs:
        env["ACCELERATE_USE_CPU"] = "1"
    return env


def _run(args, two_procs=False, check=True):
    launch = ACCELERATE + (TWO_PROCS if two_procs else ["--num_processes", "1", "--cpu", "--num_machines", "1",
                                                        "--mixed_precision", "no", "--dynamo_backend", "no"])
    proc = subprocess.run(launch + args, cwd=ROOT, env=_env(two_procs), capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


def _weights(out_dir, rank=0):
    return load_file(str(Path(out_dir) / f"rank{rank}.safetensors"))


def _assert_same(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


@pytest.mark.slow
def test_smoke_run_then_resume_auto(tmp_path):
    run = tmp_path / "run"
    _run(["scripts/train_gan.py", "experiment=smoke", "train.kimg=0.064", "train.tick_kimg=0.016",
          "train.grid_kimg=0.032", "train.checkpoint_kimg=0.032", f"hydra.run.dir={run}"])  # fmt: skip
    for f in ["config_resolved.yaml", "metrics.jsonl", "generator_ema.safetensors", "samples/reals.png",
              "samples/fakes00000.000.png", "samples/fakes00000.064.png"]:  # fmt: skip
        assert (run / f).is_file(), f
    assert list((run / "tensorboard").iterdir())
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step-000000004", "step-000000008"]
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["kimg"], 3) for r in lines] == [0.016, 0.032, 0.048, 0.064]
    assert all(r["loss_D"] == r["loss_D"] for r in lines)  # not NaN
    # continue to a longer run: appends to metrics.jsonl, keeps the newest 2 checkpoints
    proc = _run(["scripts/train_gan.py", "experiment=smoke", "train.kimg=0.096", "train.tick_kimg=0.016",
                 "train.grid_kimg=0.032", "train.checkpoint_kimg=0.032", "resume=auto", f"hydra.run.dir={run}"])  # fmt: skip
    assert "Resuming at kimg 0.064" in proc.stdout + proc.stderr
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [round(r["kimg"], 3) for r in lines][-2:] == [0.08, 0.096] and len(lines) == 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000008", "step-000000012"]
    meta = __import__("maxvit_gan.models.pretrained", fromlist=["x"]).read_generator_metadata(run / "generator_ema.safetensors")
    assert meta["step"] == "12"


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
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    _run(["tests/_train_worker.py", str(straight / "w"), *FAST, f"run_dir={straight}"], two_procs=True)
    r0, r1 = _weights(straight / "w", 0), _weights(straight / "w", 1)
    _assert_same(r0, r1)  # G, D and EMA identical across ranks
    _run(["tests/_train_worker.py", str(halves / "w1"), *FAST, "train.kimg=0.032", f"run_dir={halves}"], two_procs=True)
    _run(["tests/_train_worker.py", str(halves / "w"), *FAST, "resume=auto", f"run_dir={halves}"], two_procs=True)
    _assert_same(r0, _weights(halves / "w", 0))
    _assert_same(r0, _weights(halves / "w", 1))


def _train_script(args, tmp_path):
    return subprocess.run([sys.executable, "scripts/train_gan.py", f"hydra.run.dir={tmp_path / 'r'}", *args], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train.kimgg=1"], "kimgg"),
        (["experiment=smoke", "data=folder", "data.path=/nonexistent/imagenet"], "/nonexistent/imagenet"),
        (["experiment=smoke", "train.batch_size=6", "train.grad_accum=4"], "train.batch_size"),
        (["experiment=smoke", "loss.kind=wgan"], "loss.kind"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path, args, expected):
    proc = _train_script(args, tmp_path)
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout


def test_empty_folder_is_an_error_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _train_script(["experiment=smoke", "data=folder", f"data.path={tmp_path / 'empty'}"], tmp_path)
    assert proc.returncode != 0
    assert str(tmp_path / "empty") in proc.stderr + proc.stdout
    assert not (tmp_path / "r" / "checkpoints").exists()

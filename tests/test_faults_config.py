"""Fault injection, subject: settings checked before any work. What belongs here: a value out of
range, a typo, a combination that cannot work (train.batch_size vs grad_accum), a missing data
path: one line per problem, before anything is trained or written. (keep_checkpoints and a config
that does not fit a checkpoint: test_faults_checkpoints.py; data content: test_faults_data.py.)"""

from __future__ import annotations

import pytest
from train_utils import SMOKE, run_config, run_script

from maxvit_gan.config import validate_run_config

# ----------------------------------------------------------------------------- numeric settings


@pytest.mark.parametrize(
    "override,line",
    [
        ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
        ("train.batch_size=-8", "train.batch_size: must be >= 1, got -8"),
        ("train.grad_accum=0", "train.grad_accum: must be >= 1, got 0"),
        ("loss.r1_interval=0", "loss.r1_interval: must be >= 1, got 0"),
        ("train.kimg=-1", "train.kimg: must be > 0, got -1.0"),
        ("train.kimg=0", "train.kimg: must be > 0, got 0.0"),
        ("train.tick_kimg=-1", "train.tick_kimg: must be >= 0"),
        ("train.grid_rows=0", "train.grid_rows: must be >= 1, got 0"),
        ("optim.g_lr=0", "optim.g_lr: must be > 0, got 0.0"),
        ("optim.betas=[0.5,1.5]", "optim.betas: must be two numbers in [0, 1)"),
        ("train.ema_half_life_kimg=0", "train.ema_half_life_kimg: must be > 0"),
        ("train.ema_decay=1.5", "train.ema_decay: must be in [0, 1] or null, got 1.5"),
        ("data.num_workers=-1", "data.num_workers: must be >= 0, got -1"),
        ("train.cpu_threads=0", "train.cpu_threads: must be >= 1 or null, got 0"),
        ("loss.r1_gamma=-1", "loss.r1_gamma: must be >= 0, got -1.0"),
        ("train.kimg=inf", "train.kimg: must be a finite number > 0, got inf"),
        ("metrics.fid.num_samples=0", "metrics.fid.num_samples: must be >= 1, got 0"),
    ],
)
def test_out_of_range_numbers_are_one_line_each(override, line):
    with pytest.raises(ValueError) as err:
        validate_run_config(run_config("unused", override), 1)
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_every_bad_number_is_reported_at_once():
    with pytest.raises(ValueError) as err:
        validate_run_config(run_config("unused", "train.batch_size=0", "train.grad_accum=0", "loss.r1_interval=0"), 1)
    assert [s.split(":")[0] for s in str(err.value).splitlines()] == ["train.batch_size", "train.grad_accum", "loss.r1_interval"]


# ----------------------------------------------------------------------------- the script's order of work


@pytest.mark.slow
def test_script_with_a_zero_batch_size_stops_before_any_work(tmp_path, capsys):
    """scripts/train_gan.py (in this process): the check comes before any work or file."""
    code, stdout, stderr = run_script(capsys, "train_gan.py", *SMOKE, f"hydra.run.dir={tmp_path / 'r'}",
                                      "train.batch_size=0", "train.grad_accum=0")  # fmt: skip
    out = stdout + stderr
    assert code != 0
    assert "train.batch_size: must be >= 1, got 0" in out and "train.grad_accum: must be >= 1, got 0" in out
    assert "ZeroDivisionError" not in out
    assert not (tmp_path / "r" / "checkpoints").exists() and not (tmp_path / "r" / "config_resolved.yaml").exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train.kimgg=1"], "kimgg"),
        (["experiment=smoke", "data=folder", "data.path=/nonexistent/imagenet"], "/nonexistent/imagenet"),
        (["experiment=smoke", "train.batch_size=6", "train.grad_accum=4"], "train.batch_size"),
        (["experiment=smoke", "loss.kind=wgan"], "loss.kind"),
    ],
)
def test_bad_configuration_is_a_clear_error(tmp_path, capsys, args, expected):
    """scripts/train_gan.py (in this process) with the default experiment or the smoke one."""
    code, stdout, stderr = run_script(capsys, "train_gan.py", f"hydra.run.dir={tmp_path / 'r'}", *args)
    assert code != 0
    assert expected in stderr + stdout

"""Helpers every test module may use: the checkout (ROOT), the environment of the processes the
tests start (subprocess_env), the launch commands, and training or a command in this process
(run_config, fresh_trainer, model_state, run_cli, run_script).

Starting Python costs seconds (torch, Accelerate, Hydra): a test starts a process only when
the process is its point (a launcher, a signal, a lock, a fresh interpreter); a script's logic
runs in this process (run_script, run_cli).
"""

from __future__ import annotations

import logging
import os
import runpy
import shutil
import sys
from pathlib import Path

from accelerate.state import AcceleratorState, GradientState

from maxvit_gan.config import compose
from maxvit_gan.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]  # the checkout: scripts/, benchmarks/, README.md, maxvit_gan/

ACCELERATE_LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
ONE_PROCESS = ["--num_processes", "1", "--cpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
TWO_PROCESSES = [
    "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
    "--dynamo_backend", "no", "--main_process_port", "0",
]  # fmt: skip
SMOKE = ("experiment=smoke", "data.shapes_num_images=64", "train.log_with=none")  # what run_config starts from


def subprocess_env(two_procs: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a process a test starts: this checkout's code first on PYTHONPATH (not
    what the shared virtual environment's editable install points at), one thread per process,
    also for training (two busy threads on two shared cores crawl), and the defaults a user has
    (no MAXVIT_GAN_DEBUG tracebacks, Accelerate's own log level). ``two_procs``: Accelerate's CPU
    flag for a multi-process run. ``extra``: more variables."""
    env = dict(os.environ)
    for name in ("MAXVIT_GAN_DEBUG", "ACCELERATE_LOG_LEVEL"):
        env.pop(name, None)
    paths = [str(ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT))]
    env.update(PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS="1", MAXVIT_GAN_CPU_THREADS="1")
    if two_procs:
        env["ACCELERATE_USE_CPU"] = "1"
    env.update(extra)
    return env


def run_config(run_dir, *overrides):
    """The typed config of a small run in ``run_dir``: experiment=smoke on 64 images, no
    trackers, then ``overrides`` (composed as `maxvit-gan train` composes it)."""
    cfg = compose("train", [*SMOKE, *overrides])
    cfg.run_dir = str(run_dir)
    return cfg


def reset_accelerate() -> None:
    """Accelerate keeps process-wide singletons: reset them so the next Accelerator starts clean."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def fresh_trainer(cfg) -> Trainer:
    """A Trainer in this process, with Accelerate's singletons reset first."""
    reset_accelerate()
    return Trainer(cfg)


def model_state(trainer) -> dict:
    """Every weight of G, D and the EMA generator, cloned (for bit-exact comparisons)."""
    acc = trainer.accelerator
    out = {}
    for name, module in (("G", acc.unwrap_model(trainer.G)), ("D", acc.unwrap_model(trainer.D)), ("EMA", trainer.ema.module)):
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return out


def copy_run(src: Path, dest: Path, checkpoints: bool = True) -> Path:
    """A copy of a run directory a shared fixture made, for a test that changes it."""
    shutil.copytree(src, dest, ignore=None if checkpoints else shutil.ignore_patterns("checkpoints"))
    return dest


def _in_process(capsys, argv0: str, call) -> tuple[int, str, str]:
    """Run a command in this process and leave the process as it was: sys.argv, Accelerate's
    singletons and the logging setup (Hydra points the root logger at the captured stderr)."""
    reset_accelerate()
    saved_argv = sys.argv[:]
    loggers = [logging.getLogger(), logging.getLogger("hydra")]
    saved_logging = [(lg, lg.handlers[:], lg.level) for lg in loggers]
    sys.argv = [argv0]
    code = 0
    try:
        call()
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code
    finally:
        sys.argv = saved_argv
        for lg, handlers, level in saved_logging:
            lg.handlers[:] = handlers
            lg.setLevel(level)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`maxvit-gan ARGV...` in this process: (exit code, stdout, stderr)."""
    from maxvit_gan.cli import main

    return _in_process(capsys, "maxvit-gan", lambda: main(list(argv)))


def run_script(capsys, script: str, *argv) -> tuple[int, str, str]:
    """`python scripts/SCRIPT ARGV...` in this process (the file itself, as __main__): (exit code,
    stdout, stderr)."""
    path = ROOT / "scripts" / script

    def call():
        sys.argv = [str(path), *argv]
        runpy.run_path(str(path), run_name="__main__")

    return _in_process(capsys, str(path), call)

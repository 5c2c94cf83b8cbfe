"""``maxvit-gan train``: train a MaxViT-generator GAN (Hydra config ``train``).

    accelerate launch scripts/train_gan.py                                  # CPU demo: tiny G on shapes, 32 px
    maxvit-gan train experiment=smoke run_dir=outputs/smoke                 # the installed command, one process
    accelerate launch --multi_gpu --num_processes 8 -m maxvit_gan train experiment=imagenet128 data.path=...
    maxvit-gan train ... resume=auto                                        # continue the newest checkpoint
"""

from __future__ import annotations

import os
from pathlib import Path

from maxvit_gan.cli.common import UsageError, run_command


def run_dir_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be the run directory (a file, under a file, not writable), or None.
    Checked before Hydra creates it: its own attempt ends in a traceback."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a directory: choose another run_dir"
    existing = path
    while not existing.exists() and existing != existing.parent:  # the nearest part that exists
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is a file, not a directory: choose another run_dir"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = f"{path} is not writable" if existing == path else f"cannot create {path}: {existing} is not writable"
        return f"{what} (permissions or a read-only file system): choose another run_dir"
    return None


def check_run_dir(hydra_cfg) -> None:
    """``run_dir`` / ``hydra.run.dir`` of the composed command line (the default included)."""
    problem = run_dir_problem(str(hydra_cfg.run.dir))
    if problem:
        raise UsageError(f"run_dir: {problem}")


def task(dcfg) -> None:
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list, parse_flag_from_env
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from maxvit_gan.checkpoint import CheckpointError
    from maxvit_gan.rundir import RunDir
    from maxvit_gan.training.accelerator import build_accelerator
    from maxvit_gan.training.lock import RunDirLockedError
    from maxvit_gan.training.trainer import Trainer

    cfg = OmegaConf.to_object(dcfg)
    # the process group, before anything is broadcast (as Accelerator would: --cpu arrives as ACCELERATE_USE_CPU)
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    run_dir = [HydraConfig.get().runtime.output_dir if state.is_main_process else None]
    broadcast_object_list(run_dir)  # every rank uses rank 0's directory
    if cfg.run_dir is not None and Path(cfg.run_dir).resolve() != Path(run_dir[0]).resolve():
        raise UsageError(
            f"run_dir: {cfg.run_dir} is set in a config file, but the run directory is Hydra's "
            f"({run_dir[0]}): set it on the command line, run_dir=DIR (short for hydra.run.dir=DIR)"
        )
    cfg.run_dir = str(run_dir[0])
    cfg.overrides = list(HydraConfig.get().overrides.task)  # what recipe=auto keeps as given
    accelerator = build_accelerator(cfg)
    try:
        trainer = Trainer(cfg, accelerator)  # locks the run dir, checks the config and the checkpoint to resume
    except (RunDirLockedError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    if accelerator.is_main_process:
        RunDir(cfg.run_dir).write_config(cfg)  # only now: a refused start leaves the run's config as it was
    result = trainer.train()
    accelerator.print(f"Done: step {result['step']}, kimg {result['kimg']:.3f}; outputs in {cfg.run_dir}")
    accelerator.end_training()


def main(argv: list[str] | None = None) -> None:
    from maxvit_gan.checkpoint import CheckpointError, CheckpointWriteError
    from maxvit_gan.launch import quiet_hydra_on_other_ranks
    from maxvit_gan.training.health import DivergenceError, NonFiniteLossError
    from maxvit_gan.training.stopping import PeerLostError, TrainingError

    codes = {NonFiniteLossError: 3, DivergenceError: 3, CheckpointError: 3, CheckpointWriteError: 3, PeerLostError: 3,
             TrainingError: 3}  # fmt: skip
    run_command("train", task, argv, exit_codes=codes, before_hydra=quiet_hydra_on_other_ranks, check=check_run_dir)


if __name__ == "__main__":
    main()

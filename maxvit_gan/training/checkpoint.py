"""Checkpoints: atomic save, load, prune.

A checkpoint is one directory per step (names and layout: ``maxvit_gan.rundir``) holding
``accelerator.save_state`` (G, D, optimizers, RNG states, scaler), the EMA weights and the
train state. It is written under a hidden temporary name and renamed when complete, so a
crash or kill during a save never damages the previous checkpoint, and a directory that
``list_checkpoints`` returns is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from maxvit_gan.rundir import (  # noqa: F401  (list/latest re-exported: the checkpoint API in one place)
    CHECKPOINT_EMA_FILE,
    TRAIN_STATE_FILE,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    partial_checkpoint_name,
)


def save_checkpoint(accelerator, root: str | os.PathLike, step: int, ema_module, train_state: dict) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint directory."""
    root = Path(root)
    final = root / checkpoint_name(step)
    tmp = root / partial_checkpoint_name(step, "tmp")
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        save_file({k: v.detach().contiguous().cpu() for k, v in ema_module.state_dict().items()}, str(tmp / CHECKPOINT_EMA_FILE))
        with open(tmp / TRAIN_STATE_FILE, "w") as f:
            json.dump(train_state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():  # re-saving the same step (e.g. a stop right after a checkpoint)
            old = root / partial_checkpoint_name(step, "old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str | os.PathLike, ema_module) -> dict:
    """Restore models, optimizers and RNG (Accelerate), the EMA weights; return the train state."""
    path = Path(path)
    if not (path / TRAIN_STATE_FILE).is_file():
        raise FileNotFoundError(f"resume: {path} is not a checkpoint directory (no {TRAIN_STATE_FILE})")
    accelerator.load_state(str(path))
    ema_module.load_state_dict(load_file(str(path / CHECKPOINT_EMA_FILE), device="cpu"))
    with open(path / TRAIN_STATE_FILE) as f:
        return json.load(f)


def prune_checkpoints(root: str | os.PathLike, keep: int, protect: tuple[str, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (never those named in ``protect``)."""
    ckpts = list_checkpoints(root)
    doomed = [p for p in ckpts[: max(len(ckpts) - keep, 0)] if p.name not in protect]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed

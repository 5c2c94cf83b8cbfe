"""Checkpoints: atomic save, find, load, prune; export of the EMA generator.

A checkpoint is a directory ``checkpoints/step-<step>/`` holding
``accelerator.save_state`` (G, D, optimizers, RNG states, scaler), ``ema.safetensors``
and ``train_state.json``. It is written under a temporary name and renamed when complete,
so a crash or kill during a save never damages the previous checkpoint, and a directory
named ``step-*`` is always whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
TRAIN_STATE = "train_state.json"
EMA_FILE = "ema.safetensors"


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def save_checkpoint(accelerator, root: str | os.PathLike, step: int, ema_module, train_state: dict) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint directory."""
    root = Path(root)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        save_file({k: v.detach().contiguous().cpu() for k, v in ema_module.state_dict().items()}, str(tmp / EMA_FILE))
        with open(tmp / TRAIN_STATE, "w") as f:
            json.dump(train_state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():  # re-saving the same step (e.g. a stop right after a checkpoint)
            old = root / f".old-{checkpoint_name(step)}"
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
    if not (path / TRAIN_STATE).is_file():
        raise FileNotFoundError(f"resume: {path} is not a checkpoint directory (no {TRAIN_STATE})")
    accelerator.load_state(str(path))
    ema_module.load_state_dict(load_file(str(path / EMA_FILE), device="cpu"))
    with open(path / TRAIN_STATE) as f:
        return json.load(f)


def prune_checkpoints(root: str | os.PathLike, keep: int, protect: tuple[str, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (never those named in ``protect``)."""
    ckpts = list_checkpoints(root)
    doomed = [p for p in ckpts[: max(len(ckpts) - keep, 0)] if p.name not in protect]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed

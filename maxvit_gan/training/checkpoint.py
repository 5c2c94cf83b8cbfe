"""Checkpoints: atomic save, verified load, prune.

A checkpoint is one directory per step (names and layout: ``maxvit_gan.rundir``) holding
``accelerator.save_state`` (G, D, optimizers, RNG states, scaler), the EMA weights and the
train state. It is written under a hidden temporary name and renamed when complete, so a
crash or kill during a save never damages the previous checkpoint, and a directory that
``list_checkpoints`` returns is always whole.

The train state records the size and sha256 of every other file of the checkpoint (``files``)
and a checksum of itself (``state_sha256``): :func:`verify_checkpoint` finds a truncated,
emptied or bit-flipped file before anything is loaded, and names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from maxvit_gan.rundir import (  # noqa: F401  (list/latest re-exported: the checkpoint API in one place)
    CHECKPOINT_EMA_FILE,
    DAMAGED_KIND,
    TRAIN_STATE_FILE,
    checkpoint_name,
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    list_partial_checkpoints,
    partial_checkpoint_name,
)

FILES_KEY = "files"  # train state: {file name: {"size": bytes, "sha256": hex}} of the other files
STATE_SHA_KEY = "state_sha256"  # train state: sha256 of its own canonical JSON without this key


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit the run; the message is one line."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, ...); the previous ones are intact."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _state_digest(state: dict) -> str:
    body = {k: v for k, v in state.items() if k != STATE_SHA_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _all_ok(accelerator, ok: bool) -> bool:
    """The same verdict on every rank: True only when ``ok`` everywhere (a tiny all-reduce)."""
    if accelerator.num_processes == 1:
        return ok
    import torch

    flag = torch.tensor([0.0 if ok else 1.0], device=accelerator.device)
    return accelerator.reduce(flag, reduction="sum").item() == 0


def save_checkpoint(accelerator, root: str | os.PathLike, step: int, ema_module, train_state: dict) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint directory.

    Raises :class:`CheckpointWriteError` on every rank when any rank failed to write (the
    partial directory is removed; earlier checkpoints are untouched)."""
    root = Path(root)
    final = root / checkpoint_name(step)
    tmp = root / partial_checkpoint_name(step, "tmp")
    error = None
    try:
        if accelerator.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(tmp), safe_serialization=True)
        except Exception as err:  # disk full, permissions, ...: every rank must learn of it
            error = err
        accelerator.wait_for_everyone()  # every rank's files are complete before they are hashed
        ok = _all_ok(accelerator, error is None)
        if ok and accelerator.is_main_process:
            try:
                save_file(
                    {k: v.detach().contiguous().cpu() for k, v in ema_module.state_dict().items()},
                    str(tmp / CHECKPOINT_EMA_FILE),
                )
                state = dict(train_state)
                state[FILES_KEY] = {
                    f.name: {"size": f.stat().st_size, "sha256": file_sha256(f)}
                    for f in sorted(tmp.iterdir())
                    if f.is_file() and f.name != TRAIN_STATE_FILE
                }
                state[STATE_SHA_KEY] = _state_digest(state)
                with open(tmp / TRAIN_STATE_FILE, "w") as f:
                    json.dump(state, f, indent=1)
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
            except Exception as err:
                error = err
        ok = _all_ok(accelerator, error is None) if ok else False
    except BaseException:  # interrupted (Ctrl-C, a dying peer): never leave the partial directory
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not ok:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        what = f"{type(error).__name__}: {error}" if error is not None else "another process failed to write its part"
        raise CheckpointWriteError(f"could not write checkpoint {final} ({what})")
    return final


def clean_partial_checkpoints(root: str | os.PathLike) -> list[Path]:
    """At start: finish or remove what an interrupted save left behind. A ``.old-step-N`` whose
    ``step-N`` is missing (killed between the two renames of a re-save) becomes ``step-N``
    again; every other ``.tmp-*`` / ``.old-*`` directory is deleted. Returns the deleted paths."""
    root = Path(root)
    removed = []
    for kind, step, path in list_partial_checkpoints(root):
        final = root / checkpoint_name(step)
        if kind == "old" and not final.exists():
            os.replace(path, final)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a damaged checkpoint ``step-N`` to ``.damaged-step-N`` (never listed, never
    deleted automatically: kept for inspection)."""
    path = Path(path)
    step = checkpoint_step(path)
    dest = path.with_name(partial_checkpoint_name(step, DAMAGED_KIND))
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    os.replace(path, dest)
    return dest


def read_train_state(path: str | os.PathLike) -> dict:
    """The train state of a checkpoint directory; :class:`CheckpointError` (one line) if it is
    missing, unreadable or fails its own checksum."""
    path = Path(path)
    state_file = path / TRAIN_STATE_FILE
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint directory")
    if not state_file.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint: no {TRAIN_STATE_FILE}")
    try:
        state = json.loads(state_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{state_file} is unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or not isinstance(state.get("nimg"), int):
        raise CheckpointError(f"{state_file} is not a train state (no integer step / nimg)")
    if STATE_SHA_KEY in state and state[STATE_SHA_KEY] != _state_digest(state):
        raise CheckpointError(f"{state_file} is damaged: its checksum does not match its content")
    return state


def verify_checkpoint(path: str | os.PathLike, full: bool = True) -> dict:
    """Check a checkpoint before loading it: the train state, then the size and (``full``) the
    sha256 of every file it lists. Returns the train state; raises :class:`CheckpointError`
    naming the first damaged file. Checkpoints written before checksums existed are checked
    for their train state only."""
    path = Path(path)
    state = read_train_state(path)
    for name, want in (state.get(FILES_KEY) or {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f} is missing")
        size = f.stat().st_size
        if size != want.get("size"):
            raise CheckpointError(f"{f} is damaged: {size} bytes, {want.get('size')} when saved")
        if full and file_sha256(f) != want.get("sha256"):
            raise CheckpointError(f"{f} is damaged: its sha256 differs from the one recorded when it was saved")
    return state


def load_checkpoint(accelerator, path: str | os.PathLike, ema_module, verify: bool = True) -> dict:
    """Restore models, optimizers and RNG (Accelerate), the EMA weights; return the train state.
    ``verify``: check sizes and checksums first (:func:`verify_checkpoint`)."""
    path = Path(path)
    state = verify_checkpoint(path) if verify else read_train_state(path)
    try:
        accelerator.load_state(str(path))
        ema_module.load_state_dict(load_file(str(path / CHECKPOINT_EMA_FILE), device="cpu"))
    except Exception as err:  # safetensors / pickle / size-mismatch errors: one line naming the checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"cannot load checkpoint {path}: {type(err).__name__}: {first}") from err
    return {k: v for k, v in state.items() if k not in (FILES_KEY, STATE_SHA_KEY)}


def prune_checkpoints(root: str | os.PathLike, keep: int, protect: tuple[str, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` (>= 1) checkpoints (never those named in ``protect``)."""
    if keep < 1:
        raise ValueError(f"train.keep_checkpoints: must be >= 1, got {keep}")
    ckpts = list_checkpoints(root)
    doomed = [p for p in ckpts[: max(len(ckpts) - keep, 0)] if p.name not in protect]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed

"""Checkpoints, in one place: their names, atomic save, verification, the choice of the one to
resume from, the check that it fits the configured models, load, prune.

::

    <run>/checkpoints/step-<step>/          accelerator.save_state (G, D, optimizers, RNG) + the two files below
                      step-<step>/ema.safetensors     the EMA generator's weights
                      step-<step>/train_state.json    step, nimg, epoch, position, best score, ADA p, model settings,
                                                      size + sha256 of every other file, a checksum of itself
    <run>/checkpoints/.tmp-step-<step>/     a checkpoint being written (removed at the next start)
    <run>/checkpoints/.old-step-<step>/     the previous copy while a step is saved again
    <run>/checkpoints/.damaged-step-<step>/ a checkpoint that failed verification, set aside on resume

A checkpoint is written under its hidden temporary name and renamed when complete, so a crash
or kill during a save never damages the previous one, and a directory :func:`list_checkpoints`
returns is always whole. :func:`verify_checkpoint` finds a truncated, emptied or bit-flipped file
before anything is loaded, and names it. :func:`read_train_state` is the one reader of the
train state. Functions take the checkpoints folder (``RunDir.checkpoints_dir``) or a checkpoint
directory; the collective ones (save, load) take the Accelerator.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file

from maxvit_gan.files import follow_umask

EMA_FILE = "ema.safetensors"  # the EMA state dict (weights only: the architecture is the run's)
TRAIN_STATE_FILE = "train_state.json"
FILES_KEY = "files"  # train state: {file name: {"size": bytes, "sha256": hex}} of the other files
STATE_SHA_KEY = "state_sha256"  # train state: sha256 of its own canonical JSON without this key
MODEL_KEY = "model"  # train state: the resolved G and D settings the checkpoint was trained with
PARTIAL_KINDS = ("tmp", "old")  # leftovers of an interrupted save
DAMAGED_KIND = "damaged"  # set aside, kept for inspection, never deleted automatically

_NAME_RE = re.compile(r"^step-(\d+)$")
_PARTIAL_RE = re.compile(r"^\.(tmp|old|damaged)-step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit the run; the message is one line."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, ...); the previous ones are intact."""


# ---------------------------------------------------------------------- names and listing


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}"


def partial_checkpoint_name(step: int, kind: str) -> str:
    """A checkpoint being written (``tmp``), replaced (``old``) or set aside (``damaged``): hidden."""
    return f".{kind}-{checkpoint_name(step)}"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a ``step-<N>`` directory name, or None for any other name."""
    m = _NAME_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (``step-*`` directories) under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(s, p) for p in root.iterdir() if (s := checkpoint_step(p)) is not None and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def list_partial_checkpoints(root: str | os.PathLike, kinds: tuple[str, ...] = PARTIAL_KINDS) -> list[tuple[str, int, Path]]:
    """``(kind, step, path)`` of the hidden checkpoint directories under ``root`` of the given kinds."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        m = _PARTIAL_RE.match(p.name)
        if m and m.group(1) in kinds:
            out.append((m.group(1), int(m.group(2)), p))
    return out


# ---------------------------------------------------------------------- the train state


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _state_digest(state: dict) -> str:
    body = {k: v for k, v in state.items() if k != STATE_SHA_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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
    if state.get(STATE_SHA_KEY) != _state_digest(state):
        raise CheckpointError(f"{state_file} is damaged: its checksum does not match its content")
    return state


def verify_checkpoint(path: str | os.PathLike, full: bool = True) -> dict:
    """Check a checkpoint before loading it: the train state, then the size and (``full``) the
    sha256 of every file it lists. Returns the train state; raises :class:`CheckpointError`
    naming the first damaged file."""
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


# ---------------------------------------------------------------------- save, load, prune


def _all_ok(accelerator, ok: bool) -> bool:
    """The same verdict on every rank: True only when ``ok`` everywhere (a tiny all-reduce)."""
    if accelerator.num_processes == 1:
        return ok
    import torch

    flag = torch.tensor([0.0 if ok else 1.0], device=accelerator.device)
    return accelerator.reduce(flag, reduction="sum").item() == 0


def _write_extras(tmp: Path, ema_module, train_state: dict) -> None:
    """Rank 0, into the temporary directory: the EMA weights, then the train state with the size
    and sha256 of every other file and its own checksum."""
    save_file({k: v.detach().contiguous().cpu() for k, v in ema_module.state_dict().items()}, str(tmp / EMA_FILE))
    follow_umask(tmp)  # safetensors (ours and save_state's) writes 0600: others could not read the weights
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


def _publish(root: Path, tmp: Path, step: int) -> Path:
    """Rename the complete temporary directory onto ``step-N`` (re-saving a step: the old copy
    goes aside first, and is removed only after the new one is in place)."""
    final = root / checkpoint_name(step)
    if final.exists():
        old = root / partial_checkpoint_name(step, "old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


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
                _write_extras(tmp, ema_module, train_state)
                _publish(root, tmp, step)
            except Exception as err:
                error = err
        ok = _all_ok(accelerator, error is None)
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not ok:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        what = f"{type(error).__name__}: {error}" if error is not None else "another process failed to write its part"
        raise CheckpointWriteError(f"could not write checkpoint {final} ({what})")
    return final


def load_checkpoint(accelerator, path: str | os.PathLike, ema_module, verify: bool = True) -> dict:
    """Restore models, optimizers and RNG (Accelerate), the EMA weights; return the train state.
    ``verify``: check sizes and checksums first (:func:`verify_checkpoint`)."""
    path = Path(path)
    state = verify_checkpoint(path) if verify else read_train_state(path)
    try:
        accelerator.load_state(str(path))
        ema_module.load_state_dict(load_file(str(path / EMA_FILE), device="cpu"))
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
    dest = path.with_name(partial_checkpoint_name(checkpoint_step(path), DAMAGED_KIND))
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    os.replace(path, dest)
    return dest


# ---------------------------------------------------------------------- which one to resume, and does it fit


@dataclass
class ResumeChoice:
    path: Path | None = None  # the checkpoint to resume from; None: start from scratch
    damaged: list[tuple[Path, str]] = field(default_factory=list)  # newer checkpoints that failed verification
    note: str | None = None  # a line for the log (resume=auto on a fresh run directory)


def check_fits(path: Path, state: dict, settings: dict, class_weight: float) -> None:
    """A one-line CheckpointError naming every setting in which the checkpoint's models (its
    train state's ``model``) differ from ``settings`` (the configured ones, as stored)."""
    saved = state.get(MODEL_KEY)
    if not isinstance(saved, dict):
        raise CheckpointError(f"resume: {path} records no model settings (written by another version); train in a new run_dir")
    diffs = []
    for part in ("generator", "discriminator"):
        old, new = saved.get(part) or {}, settings[part]
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            if a == b or (part == "discriminator" and key in ("resolution", "num_classes")):
                continue
            if key == "class_head":
                diffs.append(
                    f"loss.class_weight={class_weight}: the checkpoint's D "
                    f"{'has' if a else 'has no'} class head, this run's {'has' if b else 'has none'}"
                )
                continue
            name = {"resolution": "data.resolution", "num_classes": "classes (from the data and data.conditional)"}
            diffs.append(f"{name.get(key, f'model.{part}.{key}')} is {a!r} in the checkpoint, {b!r} now")
    if diffs:
        raise CheckpointError(
            f"resume: {path} does not fit this configuration: {'; '.join(diffs)} (resume with the "
            "checkpoint's settings, see the run's config_resolved.yaml, or train in a new run_dir)"
        )


def choose_checkpoint(resume: str | None, root: str | os.PathLike, settings: dict, class_weight: float = 0.0) -> ResumeChoice:
    """The checkpoint to resume from, verified and checked against ``settings``.

    ``resume=auto``: the newest checkpoint that verifies (sizes and checksums); damaged newer
    ones are returned, to be reported and set aside when training starts. ``resume=PATH``: that
    one, or a one-line error naming the damaged file. No resume: ``root`` must hold no
    checkpoint yet (it would mix two runs)."""
    root = Path(root)
    if not resume:
        newest = latest_checkpoint(root)
        if newest is not None:
            raise CheckpointError(
                f"resume: {root.parent} already holds checkpoints (newest {newest.name}); pass resume=auto to "
                "continue that run, or train in a new run_dir"
            )
        return ResumeChoice()
    if resume != "auto":
        path = Path(resume)
        try:
            state = verify_checkpoint(path)
        except CheckpointError as err:
            raise CheckpointError(f"resume: {err}") from None
        check_fits(path, state, settings, class_weight)
        return ResumeChoice(path)
    damaged = []
    for path in reversed(list_checkpoints(root)):
        try:
            state = verify_checkpoint(path)
        except CheckpointError as err:
            damaged.append((path, str(err)))
            continue
        check_fits(path, state, settings, class_weight)
        for bad, why in damaged:
            warnings.warn(f"resume=auto: skipping damaged checkpoint {bad.name}: {why}; resuming from {path.name}", stacklevel=2)
        return ResumeChoice(path, damaged)
    if damaged:
        raise CheckpointError(
            f"resume=auto: no intact checkpoint in {root}: " + "; ".join(f"{p.name}: {why}" for p, why in damaged)
        )
    return ResumeChoice(note=f"resume=auto: no checkpoint in {root} yet; starting from scratch")

"""A generator from anything a user points at: a training run, one of its checkpoints, a
``.safetensors`` file, an exported (``save_pretrained``) folder, or a Hugging Face Hub repo id;
and the class names that go with it. Errors name the key (``run:`` / ``checkpoint:``).

A local path or a Hub id (:func:`is_hub_id`): only ``namespace/name`` can be a Hub id, and not
when it reads as a local path (see there), so a mistyped run directory is "no such directory",
at once, not half a minute of Hub retries. ``checkpoint=latest`` reads the newest checkpoint
that reads: the trainer may write a new one and prune old ones meanwhile.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

from maxvit_gan import checkpoint as ckpt_files
from maxvit_gan.checkpoint import (
    EMA_FILE,
    FILES_KEY,
    TRAIN_STATE_FILE,
    CheckpointError,
    file_sha256,
    read_train_state,
)
from maxvit_gan.models import Generator
from maxvit_gan.models.pretrained import read_generator_metadata
from maxvit_gan.rundir import CHECKPOINTS_DIR, GENERATOR_FILE, RunDir


def run_class_names(run: RunDir) -> list[str] | None:
    """Class names of a run's training data when they can be known cheaply (shapes: the shape
    names; zip: its dataset.json); None when unknown or unconditional."""
    if not run.has_config():
        return None
    try:
        data = run.read_config().get("data") or {}
    except ValueError as err:  # damaged: the generator file carries the architecture; only the names are lost
        warnings.warn(f"{err}; class names unknown", stacklevel=2)
        return None
    if not isinstance(data, dict):
        return None
    if not data.get("conditional", True):
        return None
    if data.get("name") == "shapes":
        from maxvit_gan.data.synthetic import SHAPE_NAMES

        return list(SHAPE_NAMES[: int(data.get("shapes_num_classes", 4))])
    if data.get("name") == "zip" and data.get("path") and os.path.isfile(data["path"]):
        import json
        import zipfile

        try:
            with zipfile.ZipFile(data["path"]) as zf:
                meta = json.loads(zf.read("dataset.json"))
            return list(meta.get("class_names") or []) or None
        except (KeyError, ValueError, OSError, zipfile.BadZipFile):
            return None
    return None


def _is_pretrained_dir(path: Path) -> bool:
    from maxvit_gan.models.pretrained import PRETRAINED_CONFIG, PRETRAINED_WEIGHTS

    return path.is_dir() and (path / PRETRAINED_WEIGHTS).is_file() and (path / PRETRAINED_CONFIG).is_file()


def class_names(source: str | os.PathLike | None) -> list[str] | None:
    """Class names of a run or an exported model: the metadata of a ``save_pretrained`` folder
    or generator file, else the run's ``config_resolved.yaml``. None when unknown (or a Hub id:
    load it, then read ``G.metadata``)."""
    if source is None or is_hub_id(str(source)):
        return None
    from maxvit_gan.models.pretrained import read_metadata

    path = Path(source).expanduser()
    meta_source = RunDir(path).generator_file if path.is_dir() and not _is_pretrained_dir(path) else path
    names = read_metadata(meta_source).get("class_names") if meta_source.exists() else None
    if names:
        return [str(n) for n in names]
    return run_class_names(RunDir(path)) if path.is_dir() else None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# folders that hold runs and exports (Hydra's outputs/ and multirun/, this README's runs/ and exports/):
# NAME/x is a local path, never a Hub namespace
LOCAL_ROOTS = ("outputs", "multirun", "runs", "exports", CHECKPOINTS_DIR)
_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


def _local_reason(source: str) -> str | None:
    """Why a ``namespace/name`` value is a local path after all (None: it may be a Hub id)."""
    first, name = source.split("/", 1)
    if Path(source).expanduser().exists():
        return "it exists here"
    if first in LOCAL_ROOTS:
        return f"{first}/ is where runs and exports are kept"
    if Path(first).is_dir():
        return f"{first}/ is a folder here"
    if name.endswith(_FILE_SUFFIXES):
        return "it names a weights file"
    return None


def is_hub_id(source: str | os.PathLike | None) -> bool:
    """Whether ``run=`` is read as a Hugging Face Hub model repo id: exactly ``namespace/name``
    (one ``/``, starting with a letter or digit: ``./x``, ``~/x``, ``/x`` and ``a/b/c`` are paths),
    and none of: it exists locally, its first part is a folder here or one of
    :data:`LOCAL_ROOTS`, its name ends like a weights file. Everything else is a local path."""
    return isinstance(source, str) and bool(_HUB_ID.match(source)) and _local_reason(source) is None


def _with_run_metadata(G: Generator, run: RunDir, weights: Path | None = None) -> Generator:
    """Add what the run knows to ``G.metadata``: class names and, for a checkpoint's weights,
    that checkpoint's step and kimg (so an export or an evaluation names the right step)."""
    meta = dict(getattr(G, "metadata", None) or {})
    if not meta.get("class_names") and G.num_classes:
        names = run_class_names(run)
        if names and len(names) == G.num_classes:
            meta["class_names"] = names
    if weights is not None and (weights.parent / TRAIN_STATE_FILE).is_file():  # a checkpoint's EMA: its step, kimg
        try:
            state = read_train_state(weights.parent)
        except CheckpointError:  # the weights are what matter; the step is then unknown
            state = {}
        meta.update({k: state[k] for k in ("step", "kimg") if k in state})
        meta["checkpoint"] = weights.parent.name
    G.metadata = meta
    return G


def load_generator(
    source: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    **hub_kwargs,
) -> Generator:
    """An eval-mode generator from any source; errors name the key (``run:`` / ``checkpoint:``).

    ``source``: a training run directory (its ``generator_ema.safetensors``), a
    ``save_pretrained`` folder, a self-describing ``.safetensors`` file, or a Hugging Face Hub
    repo id ``user/name`` (``Generator.from_pretrained``; ``hub_kwargs`` such as ``revision``
    go to the download). ``checkpoint``: the EMA weights of a checkpoint instead: ``latest``,
    ``best`` (the best tracked FID, else SWD), a
    ``checkpoints/step-N`` directory (absolute, or relative to the run), or a ``.safetensors``
    file; a weights-only file takes its architecture from the run's generator.
    ``G.metadata`` holds the step, kimg and class names when they are known.
    """
    run_path = Path(source).expanduser() if source is not None else None
    if run_path is not None:
        if not run_path.exists():
            if is_hub_id(str(source)):
                if checkpoint is not None:
                    raise ValueError(f"checkpoint: a Hub model ({source}) has no checkpoints; drop checkpoint=")
                return _from_hub(str(source), device, hub_kwargs)
            why = _local_reason(str(source)) if _HUB_ID.match(str(source)) else None
            raise FileNotFoundError(
                f"run: no such directory or file: {source} (expected a training run directory with "
                f"{GENERATOR_FILE}, a save_pretrained folder, a .safetensors file or a Hub repo id user/name"
                + (f"; not looked up on the Hub: {why})" if why else ")")
            )
        if run_path.is_dir() and not (RunDir(run_path).generator_file.is_file() or _is_pretrained_dir(run_path)):
            raise FileNotFoundError(
                f"run: {source} holds no generator weights (expected {GENERATOR_FILE}, written at a "
                "training run's first checkpoint, or model.safetensors + config.json from save_pretrained)"
            )
    if checkpoint is None:
        if run_path is None:
            raise ValueError(
                "run: required (a training run directory, a save_pretrained directory, a .safetensors file "
                "or a Hub repo id)"
            )
        if run_path.is_file() or _is_pretrained_dir(run_path):
            return Generator.from_pretrained(run_path, device=device)
        return _with_run_metadata(Generator.from_pretrained(RunDir(run_path).generator_file, device=device), RunDir(run_path))

    if str(checkpoint) == "latest":
        return _load_latest(run_path, source, device)
    if str(checkpoint) == "best":
        return _load_checkpoint(_best_checkpoint(run_path), "best", run_path, source, device)
    return _load_checkpoint(_resolve_checkpoint(str(checkpoint), run_path), checkpoint, run_path, source, device)


def _load_checkpoint(ckpt: Path, checkpoint, run_path: Path | None, source, device) -> Generator:
    """The EMA generator of a checkpoint directory, or of a ``.safetensors`` file."""
    weights = ckpt / EMA_FILE if ckpt.is_dir() else ckpt
    if not weights.is_file():
        raise FileNotFoundError(
            f"checkpoint: {ckpt} has no {EMA_FILE} (expected a checkpoint directory "
            f"{CHECKPOINTS_DIR}/step-N or a .safetensors file)"
        )
    if "generator_config" in read_generator_metadata(weights):  # self-describing file
        return Generator.from_pretrained(weights, device=device)
    if run_path is None:
        raise ValueError(
            f"run: required with checkpoint={checkpoint} ({weights.name} holds weights only; the "
            f"architecture comes from the run's {GENERATOR_FILE})"
        )
    from maxvit_gan.models.pretrained import load_weights

    G = load_generator(run_path, device="cpu")
    try:
        G.load_state_dict(load_weights(weights))
    except RuntimeError as err:
        raise ValueError(f"checkpoint: the weights in {weights} do not fit the generator of run {source}: {err}") from None
    if run_path.is_dir():
        G = _with_run_metadata(G, RunDir(run_path), weights)
    return G.to(device)


def _from_hub(repo_id: str, device, hub_kwargs: dict) -> Generator:
    try:
        return Generator.from_pretrained(repo_id, device=device, **hub_kwargs)
    except FileNotFoundError:  # huggingface_hub is not installed: the message says how to get it
        raise
    except Exception as err:  # offline, no such repo, not a maxvit-gan model: one message
        raise FileNotFoundError(
            f"run: {repo_id} is not a local path, and reading it from the Hugging Face Hub failed "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err


def _verify_ema(path: Path) -> None:
    """The EMA file of a checkpoint is the one its train state recorded (size, sha256); without a
    train state (a folder made by hand) the weights file alone decides."""
    if not (path / TRAIN_STATE_FILE).is_file():
        return
    want = (read_train_state(path).get(FILES_KEY) or {}).get(EMA_FILE)
    f = path / EMA_FILE
    if want and (f.stat().st_size != want.get("size") or file_sha256(f) != want.get("sha256")):
        raise CheckpointError(f"{f} is damaged: it differs from the file recorded when it was saved")


def _load_latest(run_path: Path | None, source, device, rounds: int = 3) -> Generator:
    """``checkpoint=latest``: the newest checkpoint that reads and verifies. One that disappears
    while read (pruned by the trainer, which may have written a newer one meanwhile) is passed
    over silently, a damaged one with a warning; the list is read again when all are passed over."""
    if run_path is None or run_path.is_file():
        raise ValueError("checkpoint: 'latest' needs run=<run directory>")
    root = RunDir(run_path).checkpoints_dir
    failed: dict[str, BaseException] = {}
    for _ in range(rounds):
        candidates = [p for p in reversed(ckpt_files.list_checkpoints(root)) if p.name not in failed]
        if not candidates:
            break
        for path in candidates:
            try:
                _verify_ema(path)
                return _load_checkpoint(path, "latest", run_path, source, device)
            except (OSError, ValueError) as err:  # CheckpointError is a ValueError
                failed[path.name] = err
                if path.exists():
                    warnings.warn(f"checkpoint=latest: skipping {path.name}: {err}", stacklevel=3)
    if not failed:
        raise FileNotFoundError(f"checkpoint: no {CHECKPOINTS_DIR}/step-* in {run_path}")
    name, err = next(iter(failed.items()))  # the newest: its error, with its type
    more = f" (nor the {len(failed) - 1} older)" if len(failed) > 1 else ""
    raise type(err)(f"checkpoint=latest: {name} cannot be read{more}: {err}") from None


def _best_checkpoint(run_path: Path | None) -> Path:
    """``checkpoint=best``: the checkpoint of the best tracked score (FID, else SWD) that the newest
    readable train state names; the trainer keeps it through pruning."""
    if run_path is None or run_path.is_file():
        raise ValueError("checkpoint: 'best' needs run=<run directory>")
    root = RunDir(run_path).checkpoints_dir
    for path in reversed(ckpt_files.list_checkpoints(root)):
        try:
            state = read_train_state(path)
        except (OSError, ValueError):  # pruned or damaged meanwhile: an older one names the best too
            continue
        step = state.get("best_step")
        if step is None:
            raise ValueError(
                f"checkpoint=best: {run_path} has tracked no score (metrics.fid.every_kimg or "
                "metrics.swd.every_kimg), so no checkpoint is the best; use checkpoint=latest"
            )
        best = root / ckpt_files.checkpoint_name(int(step))
        if not best.is_dir():
            raise FileNotFoundError(f"checkpoint=best: {best} (named the best by {path.name}) is gone")
        _verify_ema(best)
        return best
    raise FileNotFoundError(f"checkpoint: no {CHECKPOINTS_DIR}/step-* in {run_path}")


def _resolve_checkpoint(checkpoint: str, run_path: Path | None) -> Path:
    ckpt = Path(checkpoint).expanduser()
    if not ckpt.exists() and run_path is not None and run_path.is_dir() and (run_path / checkpoint).exists():
        ckpt = run_path / checkpoint
    if not ckpt.exists():
        where = f" (nor under run {run_path})" if run_path is not None else ""
        raise FileNotFoundError(f"checkpoint: no such directory or file: {checkpoint}{where}")
    return ckpt

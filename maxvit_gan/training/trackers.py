"""Experiment trackers through Accelerate (``train.log_with``): TensorBoard, W&B, MLflow, Aim, Comet, ...

``train.log_with`` names one or more of Accelerate's trackers (comma-separated), ``all`` (every
one installed) or ``none``. The trainer sends every tick's scalars (the ``metrics.jsonl`` line)
and every snapshot grid to each of them, and the run's config once at the start.
TensorBoard (the default) writes to ``<run>/tensorboard/``; the others use their own settings,
with ``train.tracker_project`` as the project name and ``train.tracker_kwargs.<tracker>.*``
passed to their init (e.g. ``+train.tracker_kwargs.wandb.entity=me``).
An unknown name is an error; a tracker whose package is missing is an error, except the default
TensorBoard (an optional extra), which warns once and training goes on with metrics.jsonl.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, is_dataclass

import numpy as np

from maxvit_gan.launch import rank_from_env

NONE = ("", "none", "null", "false", "no")


def _available() -> set[str]:
    from accelerate.tracking import get_available_trackers

    return {str(getattr(t, "value", t)) for t in get_available_trackers()}


def _known() -> list[str]:
    from accelerate.utils import LoggerType

    return [str(t.value) for t in LoggerType]


def tracker_names(log_with: str | None) -> list[str]:
    """The trackers ``train.log_with`` asks for that can run here (see the module docstring)."""
    if log_with is None or str(log_with).strip().lower() in NONE:
        return []
    names = [n.strip().lower() for n in str(log_with).split(",") if n.strip()]
    known, available = _known(), _available()
    unknown = [n for n in names if n not in known]
    if unknown:
        choices = ", ".join(k for k in known if k != "all")
        raise ValueError(f"train.log_with: unknown tracker {unknown[0]!r}; choose from {choices} (comma-separated), all or none")
    if "all" in names:
        return sorted(available)
    out = []
    for name in dict.fromkeys(names):
        if name in available:
            out.append(name)
        elif name == "tensorboard":
            if rank_from_env() == 0:
                warnings.warn(
                    "train.log_with=tensorboard, but tensorboard is not installed (pip install tensorboard): "
                    "no TensorBoard logs for this run (metrics.jsonl and train.log are written); "
                    "train.log_with=none silences this warning",
                    stacklevel=2,
                )
        else:
            package = {"comet_ml": "comet_ml"}.get(name, name)
            raise ValueError(f"train.log_with: {name} is not installed (pip install {package}), or drop it from train.log_with")
    return out


def accelerator_trackers(names: list[str], tensorboard_dir, tracker_kwargs: dict | None = None) -> list:
    """``Accelerator(log_with=...)`` for ``names``: TensorBoard as a tracker writing to ``tensorboard_dir``
    (the run's folder), the others by name."""
    from accelerate.tracking import TensorBoardTracker

    kwargs = dict(tracker_kwargs or {})
    return [
        TensorBoardTracker(tensorboard_dir.name, str(tensorboard_dir.parent), **kwargs.get("tensorboard", {}))
        if n == "tensorboard"
        else n
        for n in names
    ]


def flat_config(cfg, prefix: str = "") -> dict:
    """A (nested) dataclass or dict as one level of ``a.b.c -> int | float | str | bool`` (what every tracker accepts)."""
    node = asdict(cfg) if is_dataclass(cfg) else cfg
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:  # None, lists
            out[name] = str(value)
    return out


def log_image(trackers, tag: str, pil_image, step: int) -> None:
    """A PIL image to every tracker that takes images (each has its own format)."""
    array = np.asarray(pil_image)
    for tracker in trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({tag: array[None]}, step=step, dataformats="NHWC")
        elif tracker.name == "aim":
            tracker.log_images({tag: array}, step=step)
        elif hasattr(tracker, "log_images"):
            try:
                tracker.log_images({tag: [array]}, step=step)
            except NotImplementedError:
                pass

"""What a run reports: the progress lines, ``train.log``, ``metrics.jsonl``, a progress bar, and the
experiment trackers of ``train.log_with`` (TensorBoard, W&B, MLflow, Aim, Comet, ...) through
Accelerate. :class:`RunLogger` is the one writer (rank 0); the rest of this module picks the trackers.

``train.log_with`` names one or more of Accelerate's trackers (comma-separated), ``all`` (every
one installed) or ``none``. The trainer sends every tick's scalars (the ``metrics.jsonl`` line)
and every training grid to each of them, and the run's config once at the start.
TensorBoard (the default) writes to ``<run>/tensorboard/``, one TensorBoard run per training,
resumes included (:class:`TensorBoardRun`); the others use their own settings,
with ``train.tracker_project`` as the project name and ``train.tracker_kwargs.<tracker>.*``
passed to their init (e.g. ``+train.tracker_kwargs.wandb.entity=me``).
An unknown name is an error; a tracker whose package is missing is an error, except the default
TensorBoard (an optional extra), which warns once and training goes on with metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm  # the bar shows on terminals only (RunLogger), so no notebook widget

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
    """``Accelerator(log_with=...)`` for ``names``: TensorBoard as a :class:`TensorBoardRun` writing to
    ``tensorboard_dir`` (the run's folder), the others by name."""
    kwargs = dict(tracker_kwargs or {})
    return [TensorBoardRun(tensorboard_dir, **kwargs.get("tensorboard", {})) if n == "tensorboard" else n for n in names]


def _tensorboard_tracker_class():
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker


class TensorBoardRun(_tensorboard_tracker_class()):
    """Accelerate's TensorBoard tracker, as one TensorBoard run per training: TensorBoard shows every
    folder holding event files as a run, and Accelerate's ``store_init_configuration`` wrote the
    config into a new timestamp folder (``add_hparams``) and an ``hparams.yml`` into another at every
    start, so a training resumed once showed three runs. Here the config (hparams) goes into the
    run's own folder, and the writer opens with ``purge_step`` (set before ``init_trackers``) so that
    a resume drops the events an earlier, killed attempt logged after its last checkpoint."""

    def __init__(self, logging_dir, purge_step: int | None = None, **kwargs):
        super().__init__(Path(logging_dir).name, str(Path(logging_dir).parent), **kwargs)
        self.purge_step = purge_step
        self.writer = None

    def start(self):  # Accelerate >= 1.4 calls it in init_trackers; older versions: store_init_configuration
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.logging_dir = os.path.join(self.logging_dir_param, self.run_name)
            self.writer = SummaryWriter(self.logging_dir, purge_step=self.purge_step, **self.init_kwargs)

    def store_init_configuration(self, values: dict):
        from torch.utils.tensorboard.summary import hparams

        self.start()
        file_writer = self.writer._get_file_writer()
        for event in hparams(values, {}):  # experiment, session start, session end
            file_writer.add_summary(event)
        self.writer.flush()


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


class RunLogger:
    """Rank 0 only: the StyleGAN-style lines (console and ``train.log``), metrics.jsonl, the
    trackers of ``train.log_with`` (scalars, sample grids, the config), and a progress bar when
    the console is a terminal (never ``\\r`` fragments in a SLURM or nohup log)."""

    def __init__(
        self, run_dir, enabled: bool, total_kimg: float, start_kimg: float, accelerator=None, cfg=None,
        purge_step: int | None = None,
    ):  # fmt: skip
        # purge_step: TensorBoard drops the events of steps >= it that an earlier, killed attempt
        # logged after its last checkpoint (metrics.jsonl: RunDir.drop_metrics_after)
        self.enabled = enabled
        self.bar = None
        self.accelerator = accelerator
        if not enabled:
            return
        run_dir.path.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(run_dir.metrics_file, "a")
        self.log = open(run_dir.log_file, "a")
        if accelerator is not None and accelerator.log_with and cfg is not None:
            for tracker in accelerator.log_with:
                if isinstance(tracker, TensorBoardRun):
                    tracker.purge_step = purge_step
            accelerator.init_trackers(
                cfg.train.tracker_project, config=flat_config(cfg), init_kwargs=dict(cfg.train.tracker_kwargs)
            )
        self.bar = tqdm(
            total=round(total_kimg, 3), initial=round(start_kimg, 3), unit="kimg", dynamic_ncols=True,
            disable=not sys.stderr.isatty(),
        )  # fmt: skip

    @property
    def trackers(self) -> list:
        return list(self.accelerator.trackers) if self.enabled and self.accelerator is not None else []

    def line(self, text: str, console: bool = True) -> None:
        """``text`` to train.log and (``console``) stdout; False: the log only (e.g. an error the
        command prints itself)."""
        if self.enabled:
            if console:
                tqdm.write(text, file=sys.stdout)
                sys.stdout.flush()
            try:
                self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}\n")
                self.log.flush()
            except OSError as err:  # disk full: the checkpoints matter more than a log line
                warnings.warn(f"could not write a line to {self.log.name} ({err}); training continues", stacklevel=2)

    def record(self, stats: dict, step: int) -> None:
        if not self.enabled:
            return
        try:
            self.jsonl.write(json.dumps(stats) + "\n")
            self.jsonl.flush()
        except OSError as err:  # disk full: the checkpoints matter more than a log line
            warnings.warn(f"could not write a line to {self.jsonl.name} ({err}); training continues", stacklevel=2)
        scalars = {k: v for k, v in stats.items() if isinstance(v, (int, float)) and k != "step"}
        for tracker in self.trackers:
            tracker.log(scalars, step=step)

    def image(self, tag: str, pil_image, step: int) -> None:
        log_image(self.trackers, tag, pil_image, step)

    def advance(self, kimg: float) -> None:
        """Every step; the bar redraws at most a few times a second and never passes its total
        (the last batch may end past train.kimg). The count is set, not added up: a sum of
        increments drifts past the total in its last bits (TqdmWarning, "101%")."""
        if self.bar is not None:
            self.bar.n = min(round(kimg, 3), self.bar.total)
            self.bar.update(0)  # redraws when tqdm's interval has passed

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.jsonl.close()
            self.log.close()
            for tracker in self.trackers:
                tracker.finish()
            if self.accelerator is not None:
                self.accelerator.trackers = []  # finished: end_training() must not finish them again


def format_duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

"""The Accelerator of a training run, built from the config alone.

Mixed precision is ``train.mixed_precision`` (DESIGN: the config, not the launcher, decides),
so a launcher that asks for another precision (``accelerate launch --mixed_precision bf16`` or
a config file's ``mixed_precision: bf16``) is overridden, and says so in one warning instead of
being ignored silently. Trackers (``train.log_with``): :mod:`maxvit_gan.training.trackers`.
"""

from __future__ import annotations

import os
import warnings

from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs

LAUNCHER_PRECISION_ENV = "ACCELERATE_MIXED_PRECISION"  # what `accelerate launch` exports


def launcher_precision_note(config_precision: str, environ=None) -> str | None:
    """A warning when the launcher asked for a mixed precision the config overrides, else None."""
    launcher = (os.environ if environ is None else environ).get(LAUNCHER_PRECISION_ENV, "no").lower()
    if launcher in ("", "no") or launcher == config_precision:
        return None
    return (
        f"the launcher asked for mixed precision {launcher!r} (accelerate launch --mixed_precision or its "
        f"config file), but train.mixed_precision={config_precision!r} decides: training in "
        f"{'fp32' if config_precision == 'no' else config_precision}. Set train.mixed_precision={launcher} to use it."
    )


def build_accelerator(cfg) -> Accelerator:
    """``Accelerator`` for a :class:`maxvit_gan.config.RunConfig`: precision from the config, DDP
    settings, the trackers of ``train.log_with`` (TensorBoard in the run directory)."""
    from maxvit_gan.rundir import RunDir
    from maxvit_gan.training.trackers import accelerator_trackers, tracker_names

    note = launcher_precision_note(cfg.train.mixed_precision)
    run = RunDir(cfg.run_dir or "outputs/run")
    names = tracker_names(cfg.train.log_with)
    accelerator = Accelerator(
        mixed_precision=cfg.train.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        log_with=accelerator_trackers(names, run.tensorboard_dir, cfg.train.tracker_kwargs) or None,
        project_dir=str(run.path),
    )
    if note and accelerator.is_main_process:
        warnings.warn(note, stacklevel=2)
    return accelerator

"""Learning-rate and EMA schedules: functions of the images seen, so a resumed run follows them."""

from __future__ import annotations

from maxvit_gan.config import OptimConfig, TrainConfig
from maxvit_gan.models import ema_beta


def lr_scale(optim: OptimConfig, total_kimg: float, nimg: int) -> float:
    """1 until the last ``optim.lr_rampdown_kimg`` of the run, then linearly down towards 0."""
    ramp = optim.lr_rampdown_kimg * 1000
    if ramp <= 0:
        return 1.0
    left = total_kimg * 1000 - nimg
    return min(1.0, max(left, 0.0) / ramp)


def ema_beta_at(train: TrainConfig, nimg: int) -> float:
    """The EMA decay of the step that brings the run to ``nimg`` images: 0 (copy G) before
    ``train.ema_start_kimg``, then ``train.ema_decay`` or the half-life schedule with ramp-up."""
    if nimg < train.ema_start_kimg * 1000:
        return 0.0
    if train.ema_decay is not None:
        return train.ema_decay
    return ema_beta(train.batch_size, train.ema_half_life_kimg, train.ema_rampup, nimg)

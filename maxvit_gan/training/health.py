"""Is training healthy: non-finite losses (``train.nan_policy``) and blow-ups (``train.divergence_bound``).

``stop`` (default) ends the run with a message naming the step and the loss, the last checkpoint
intact (NaN weights are never saved); ``skip`` drops such a step (fresh random draws next time,
no images counted) up to ``train.max_skipped_steps``. A run can also diverge with finite losses
(loss_D ~ 1e17): :class:`BlowUpGuard` watches the tick means of loss_D, loss_G and R1; while one
is beyond the bound no checkpoint is written (the good ones are not pruned), and after
``PATIENCE`` such ticks in a row the run stops, naming the newest checkpoint from before. The
verdicts are the same on every rank (they use values reduced over the ranks).
"""

from __future__ import annotations

import torch


class NonFiniteLossError(RuntimeError):
    pass


class LossGuard:
    def __init__(self, policy: str, max_skipped: int, accelerator, where: str):
        self.policy, self.max_skipped, self.accelerator, self.where = policy, max_skipped, accelerator, where

    def finite(self, value: torch.Tensor, name: str, state: dict) -> bool:
        """True when ``value`` is finite on every rank (one tiny all-reduce). Raises under ``stop``."""
        bad = (~torch.isfinite(value)).float().reshape(1)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() == 0:
            return True
        if self.policy == "stop":
            raise NonFiniteLossError(
                f"non-finite {name} ({value.item()}) at step {state['step']} (kimg {state['nimg'] / 1000:.3f}); "
                f"the last checkpoint in {self.where} is intact. Set train.nan_policy=skip to skip such steps instead."
            )
        return False

    def skip(self, state: dict) -> None:
        """Count a skipped step in ``state``; raises past ``train.max_skipped_steps``."""
        state["skipped_steps"] += 1
        state["step"] += 1  # fresh random draws next time; no images counted
        if state["skipped_steps"] > self.max_skipped:
            raise NonFiniteLossError(
                f"{state['skipped_steps']} steps skipped for non-finite losses (train.max_skipped_steps="
                f"{self.max_skipped}); stopping at step {state['step']}"
            )


class DivergenceError(RuntimeError):
    pass


class BlowUpGuard:
    PATIENCE = 3  # ticks in a row beyond the bound

    def __init__(self, bound: float):
        self.bound = bound
        self.bad_ticks = 0
        self.last_bad: dict = {}

    @property
    def sane(self) -> bool:
        return self.bad_ticks == 0

    def tick(self, means: dict, state: dict, newest_sane) -> None:
        """After a tick (``means``: loss_D, loss_G, r1 averaged over the tick and the ranks)."""
        if self.bound <= 0:
            return
        bad = {k: means[k] for k in ("loss_D", "loss_G", "r1") if abs(means[k]) > self.bound}
        self.bad_ticks = self.bad_ticks + 1 if bad else 0
        self.last_bad = bad
        if self.bad_ticks >= self.PATIENCE:
            shown = ", ".join(f"{k} {v:.3g}" for k, v in bad.items())
            raise DivergenceError(
                f"training diverged: {shown} beyond train.divergence_bound={self.bound:g} for {self.bad_ticks} ticks in a "
                f"row at step {state['step']} (kimg {state['nimg'] / 1000:.3f}); no checkpoint was written since, the "
                f"newest is {newest_sane}: resume from it with lower learning rates or a larger loss.r1_gamma"
            )

"""Is training healthy: the policy for non-finite losses (``train.nan_policy``).

``stop`` (default) ends the run with a message naming the step and the loss, the last checkpoint
intact (NaN weights are never saved); ``skip`` drops such a step (fresh random draws next time,
no images counted) up to ``train.max_skipped_steps``. The verdict is the same on every rank.
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

"""Entry points under `accelerate launch`: one Hydra run directory for all ranks (rank 0's)."""

from __future__ import annotations

import os
import sys
import tempfile


def rank_from_env() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def quiet_hydra_on_other_ranks() -> None:
    """Ranks > 0 must not write Hydra's files or logs, nor create a run directory of their
    own (timestamps differ between processes): point their Hydra at a scratch directory.
    The real run directory is rank 0's, broadcast after the process group starts."""
    if rank_from_env() == 0:
        return
    scratch = tempfile.mkdtemp(prefix=f"maxvit_gan_rank{rank_from_env()}_")
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
    sys.argv[1:] = args + [
        f"hydra.run.dir={scratch}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]

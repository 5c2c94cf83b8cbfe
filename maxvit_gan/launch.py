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


def exit_with_launcher(sig: int | None = None) -> bool:
    """Have the kernel send this process ``sig`` (SIGTERM) when its launcher dies.

    ``accelerate launch`` of one process starts the trainer as a child and does not forward
    signals: a SIGTERM to the launcher (a scheduler's, a user's) killed the launcher and left
    the trainer training on, orphaned, without its stop-save. With this, the trainer gets the
    SIGTERM itself, finishes the step, saves and exits. Only when the parent is a launcher
    (``accelerate`` / ``torchrun``): a trainer started from a shell keeps running when the shell
    goes (nohup). Linux only; returns whether it was set."""
    import signal

    sig = signal.SIGTERM if sig is None else sig
    if not sys.platform.startswith("linux"):
        return False
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            parent = f.read().replace(b"\0", b" ")
    except OSError:
        return False
    if not any(name in parent for name in (b"accelerate", b"torchrun", b"torch.distributed.run")):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(sig), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != ppid:  # the launcher died before prctl took effect
        os.kill(os.getpid(), sig)
    return True

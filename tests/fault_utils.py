"""Tools of the fault-injection tests (tests/test_faults_*.py): the settings of the shared 4-step
run (conftest.py: four_step_run), ways to damage a file, a full disk, a deadline."""

from __future__ import annotations

import errno
import hashlib
import signal
from contextlib import contextmanager
from pathlib import Path

from maxvit_gan import checkpoint as ckpt

# 4 steps of 8 images, a tick per step, checkpoints at steps 2 and 4
FOUR_STEPS = ["train.kimg=0.032", "train.checkpoint_kimg=0.016", "train.tick_kimg=0.008", "train.grid_kimg=1"]


def checkpoint_names(run: Path) -> list[str]:
    return [p.name for p in ckpt.list_checkpoints(run / "checkpoints")]


def flip_bytes(path: Path, n: int = 64) -> None:
    """Flip n bytes in the middle of a safetensors file's data (past its JSON header)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    mid = start + (len(data) - start) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tree_hash(path: Path) -> str:
    """One hash of every file under ``path`` (names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


class DeadlineExceeded(BaseException):
    pass


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the body takes longer than ``seconds``. The
    error is a BaseException: code under test that catches Exception cannot swallow it."""

    def expired(*_):
        raise DeadlineExceeded(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)

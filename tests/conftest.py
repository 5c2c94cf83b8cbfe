"""Test-wide setup: one thread per process, a fixed seed per test, and the runs that several test
modules read, each trained once per session:

* ``smoke_run``: `experiment=smoke` as a user runs it (the train, cli, sampling and sharing tests)
* ``four_step_run``: 4 steps in process, checkpoints at steps 2 and 4 (the fault tests)

They are shared: a test that changes a run copies it first (train_utils.copy_run).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["MAXVIT_GAN_CPU_THREADS"] = "1"  # training subprocesses too: 2 busy threads on 2 shared cores crawl

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from fault_utils import FOUR_STEPS  # noqa: E402
from train_utils import (  # noqa: E402
    ACCELERATE_LAUNCH,
    ONE_PROCESS,
    ROOT,
    fresh_trainer,
    model_state,
    run_config,
    subprocess_env,
)

from maxvit_gan.rundir import RunDir  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


_HANDLERS = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signal_handlers() -> None:
    """Trainer.train() in this process installs SIGTERM/SIGINT handlers and leaves them: put back
    pytest's (a process forked later, e.g. a Pool worker, would otherwise ignore terminate())."""
    for sig, handler in _HANDLERS.items():
        signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _signal_handlers():
    yield
    _restore_signal_handlers()


def _check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args}\nexit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


@dataclass(frozen=True)
class SmokeRun:
    """The smoke run: 8 steps (``first``), then resumed to 12 (``resumed``), in ``path`` (read it,
    never change it). ``after_first``: what the run directory held between the two processes."""

    path: Path
    cwd: Path  # the working directory of both processes (nothing may land there)
    first: subprocess.CompletedProcess
    resumed: subprocess.CompletedProcess
    after_first: dict  # files: relative paths of every file; metrics: metrics.jsonl's text


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """`experiment=smoke` as is (the README's check of an install: 8 steps of 8 images, a tick every
    2 steps, grids and checkpoints every 4, TensorBoard on), started as SLURM requeues do: under
    `accelerate launch` with resume=auto on an empty run directory; then `maxvit-gan train ...
    train.kimg=0.096 resume=auto` continues it to step 12. Two real processes, as users run them:
    the tests read what they print as well as what they write."""
    base = tmp_path_factory.mktemp("smoke")
    run, cwd = base / "run", base / "cwd"
    cwd.mkdir()

    def train(cmd):
        return _check(subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=600))

    first = train([*ACCELERATE_LAUNCH, *ONE_PROCESS, str(ROOT / "scripts" / "train_gan.py"), "experiment=smoke",
                   "resume=auto", f"hydra.run.dir={run}"])  # fmt: skip
    after_first = {
        "files": sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()),
        "metrics": (run / "metrics.jsonl").read_text(),
    }
    resumed = train([sys.executable, "-m", "maxvit_gan", "train", "experiment=smoke", "train.kimg=0.096", "resume=auto",
                     f"run_dir={run}"])  # fmt: skip
    return SmokeRun(run, cwd, first, resumed, after_first)


@dataclass(frozen=True)
class TrainedRun:
    path: Path  # read it, never change it: copy_run
    weights: dict  # model_state at the end (step 4)


@pytest.fixture(scope="session")
def four_step_run(tmp_path_factory) -> TrainedRun:
    """A 4-step run in process (fault_utils.FOUR_STEPS: checkpoints step-2 and step-4, a tick per
    step), with its config_resolved.yaml as the command writes it."""
    run = tmp_path_factory.mktemp("four_steps") / "run"
    t = fresh_trainer(run_config(run, *FOUR_STEPS))
    t.train()
    _restore_signal_handlers()
    RunDir(run).write_config(t.cfg)
    return TrainedRun(run, model_state(t))

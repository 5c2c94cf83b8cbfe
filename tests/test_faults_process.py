"""Fault injection with real processes: two trainers on one run directory, kill -9 then
resume, SIGTERM to the `accelerate launch` process, a rank killed in a 2-process run, and a
2-machine run on localhost. Every wait is bounded; every process started is killed at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.checkpoint import checkpoint_step
from maxvit_gan.rundir import RunDir

LOCK = "train.lock"  # maxvit_gan.rundir.LOCK_FILE, spelled out: these tests also ran against the code before the lock

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
ONE_PROC = ["--num_processes", "1", "--cpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
TWO_PROCS = [
    "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
    "--dynamo_backend", "no", "--main_process_port", "0",
]  # fmt: skip
# a long run (stopped by the test): a tick per step, a checkpoint every 4 steps
LONG = ["experiment=smoke", "train.kimg=100", "train.tick_kimg=0.008", "train.checkpoint_kimg=0.032",
        "train.grid_kimg=100", "train.log_with=none", "data.shapes_num_images=64"]  # fmt: skip

pytestmark = pytest.mark.slow


def _env(two_procs=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), MAXVIT_GAN_CPU_THREADS="1")
    if two_procs:
        env["ACCELERATE_USE_CPU"] = "1"
    return env


def _start(cmd, two_procs=False) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(two_procs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _script(run: Path, *args) -> list[str]:
    return [sys.executable, "scripts/train_gan.py", *LONG, f"hydra.run.dir={run}", *args]


def _wait(cond, timeout: float, what: str, procs=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{what}: process exited {p.returncode} first:\n{p.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_tree(proc: subprocess.Popen, extra_pids=()):
    pids = list(extra_pids)
    try:
        pids += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    for pid in [proc.pid, *pids]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.communicate(timeout=30)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in RunDir(run).read_metrics() if "loss_D" in r]


def _holder_pid(run: Path) -> int | None:
    try:
        return json.loads((run / LOCK).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


# ----------------------------------------------------------------------------- the run-directory lock


def test_a_second_trainer_on_a_busy_run_dir_fails_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    first = _start(_script(run, "seed=0"))
    try:
        _wait(lambda: len(_steps(run)) >= 2, 120, "the first trainer's ticks", [first])
        # it must not wait for the lock: a hang ends in TimeoutExpired, not in a speed verdict
        second = subprocess.run(_script(run, "seed=1", "resume=auto"), cwd=ROOT, env=_env(), capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert second.returncode != 0
        out = second.stdout + second.stderr
        assert f"is in use by another trainer: pid {first.pid} " in out, out[-3000:]
        assert RunDir(run).read_config()["seed"] == 0  # its config was not overwritten
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=120)
        assert first.returncode == 0, out[-3000:]
    finally:
        _kill_tree(first)
    steps = _steps(run)
    assert steps == list(range(1, len(steps) + 1))  # one run's lines, in order
    assert not (run / LOCK).exists()  # released at the end


def test_kill_9_then_resume_auto_takes_the_stale_lock_and_logs_each_step_once(tmp_path):
    run = tmp_path / "run"
    first = _start(_script(run))
    try:
        def past_a_checkpoint():  # the log is ahead of the newest checkpoint
            newest = ckpt.latest_checkpoint(run / "checkpoints")
            return newest is not None and max(_steps(run), default=0) >= checkpoint_step(newest) + 2

        _wait(past_a_checkpoint, 180, "ticks past a checkpoint", [first])
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        _kill_tree(first)
    logged = max(_steps(run))
    stale_holder = _holder_pid(run)  # the lock file is left behind by the kill
    kimg = (logged + 2) * 8 / 1000
    second = subprocess.run(_script(run, "resume=auto", f"train.kimg={kimg}"), cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    steps = _steps(run)
    assert steps == list(range(1, logged + 3)), steps  # no step twice
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert stale_holder == first.pid and f"taking over a stale lock: its holder, pid {first.pid}" in out


def test_sigterm_to_the_launcher_stops_and_saves_the_trainer(tmp_path):
    run = tmp_path / "run"
    launcher = _start([*ACCELERATE, *ONE_PROC, *_script(run)[1:]])
    trainer_pid = None
    try:
        _wait(lambda: len(_steps(run)) >= 2, 180, "the trainer's ticks", [launcher])
        (trainer,) = psutil.Process(launcher.pid).children()  # accelerate's simple launcher: one child
        trainer_pid = trainer.pid
        launcher.send_signal(signal.SIGTERM)
        _wait(lambda: not _alive(trainer_pid), 90, "the trainer to stop after its launcher")
        out, _ = launcher.communicate(timeout=30)
    finally:
        _kill_tree(launcher, [trainer_pid] if trainer_pid else [])
    assert "Stop requested: checkpoint saved at step" in out, out[-3000:]
    newest = ckpt.latest_checkpoint(run / "checkpoints")
    assert ckpt.verify_checkpoint(newest)["step"] == max(_steps(run))


# ----------------------------------------------------------------------------- several processes


def _worker(run: Path, out: Path, *args) -> list[str]:
    return ["tests/_fault_worker.py", str(out), *LONG, f"run_dir={run}", *args]


def test_a_killed_rank_ends_the_other_within_a_bounded_time(tmp_path):
    run, out = tmp_path / "run", tmp_path / "w"
    launcher = _start([*ACCELERATE, *TWO_PROCS, *_worker(run, out)], two_procs=True)
    pids = {}
    try:
        _wait(lambda: (out / "pid1").exists() and (out / "pid0").exists() and len(_steps(run)) >= 2, 240,
              "two ranks training", [launcher])  # fmt: skip
        pids = {r: int((out / f"pid{r}").read_text()) for r in (0, 1)}
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.time()
        _wait(lambda: not _alive(pids[0]), 120, "rank 0 to end after rank 1 was killed")
        ended = time.time() - t0
        output, _ = launcher.communicate(timeout=60)
    finally:
        _kill_tree(launcher, pids.values())
    assert launcher.returncode != 0 and ended < 120
    assert "rank 0: lost contact with another process at step" in output, output[-4000:]
    for c in ckpt.list_checkpoints(run / "checkpoints"):
        ckpt.verify_checkpoint(c)  # whatever was saved is whole


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_machines(run: Path, out: Path, *args) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--num_machines", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no",
               "--dynamo_backend", "no", "tests/_train_worker.py", str(out), *args, f"run_dir={run}"]  # fmt: skip
        procs.append(_start(cmd, two_procs=True))
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            _kill_tree(p)
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-4000:]
    return outs


def test_two_machines_on_localhost_train_and_resume(tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    fast = ["experiment=smoke", "train.kimg=0.032", "train.checkpoint_kimg=0.016", "train.tick_kimg=0.016",
            "train.grid_kimg=1", "train.log_with=none", "data.shapes_num_images=64"]  # fmt: skip
    _two_machines(run, tmp_path / "a", *fast)
    _two_machines(run, tmp_path / "b", *fast, "train.kimg=0.048", "resume=auto")
    r0, r1 = (load_file(str(tmp_path / "b" / f"rank{r}.safetensors")) for r in (0, 1))
    assert all((r0[k] == r1[k]).all() for k in r0)  # the two machines agree
    assert _steps(run) == [2, 4, 6]
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step-000000004", "step-000000006"]

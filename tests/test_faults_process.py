"""Fault injection, subject: processes, signals and locks. What belongs here: two trainers on one
run directory (the lock), kill -9 then resume, SIGTERM to the trainer or to the `accelerate launch`
process, a rank killed in a 2-process run, a 2-machine run on localhost, and the lock itself in
process. Real processes where the process is the point: every wait is bounded; every process
started is killed at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from train_utils import (
    ACCELERATE_LAUNCH,
    ONE_PROCESS,
    ROOT,
    TWO_PROCESSES,
    fresh_trainer,
    run_config,
    subprocess_env,
)

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.checkpoint import checkpoint_step
from maxvit_gan.rundir import RunDir

LOCK = "train.lock"  # maxvit_gan.rundir.LOCK_FILE, spelled out: these tests also ran against the code before the lock

# a long run (stopped by the test): a tick per step, a checkpoint every 4 steps
LONG = ["experiment=smoke", "train.kimg=100", "train.tick_kimg=0.008", "train.checkpoint_kimg=0.032",
        "train.grid_kimg=100", "train.log_with=none", "data.shapes_num_images=64"]  # fmt: skip


def _start(cmd, two_procs=False) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(two_procs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory):
    """A trainer (seed 0, scripts/train_gan.py) with a second one (seed 1, resume=auto) started on its
    run directory after two ticks; then SIGTERM to the first. What each process did, for the two
    tests below (one trainer serves both: the second trainer's refusal and the first one's stop)."""
    run = tmp_path_factory.mktemp("busy") / "run"
    first = _start(_script(run, "seed=0"))
    try:
        _wait(lambda: len(_steps(run)) >= 2, 120, "the first trainer's ticks", [first])
        # it must not wait for the lock: a hang ends in TimeoutExpired, not in a speed verdict
        second = subprocess.run(_script(run, "seed=1", "resume=auto"), cwd=ROOT, env=subprocess_env(), capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        seed_after_second = RunDir(run).read_config()["seed"]
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=120)
    finally:
        _kill_tree(first)
    return SimpleNamespace(run=run, first=first, first_out=out, second=second, seed_after_second=seed_after_second)


@pytest.mark.slow
def test_a_second_trainer_on_a_busy_run_dir_fails_at_once_naming_the_holder(busy_run):
    run, first, second = busy_run.run, busy_run.first, busy_run.second
    assert second.returncode != 0
    out = second.stdout + second.stderr
    assert f"is in use by another trainer: pid {first.pid} " in out, out[-3000:]
    assert busy_run.seed_after_second == 0  # its config was not overwritten
    assert first.returncode == 0, busy_run.first_out[-3000:]
    steps = _steps(run)
    assert steps == list(range(1, len(steps) + 1))  # one run's lines, in order
    assert not (run / LOCK).exists()  # released at the end


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(busy_run):
    """SIGTERM to the trainer (no launcher): it finishes the step, saves and exits 0."""
    out = busy_run.first_out
    assert busy_run.first.returncode == 0, out[-3000:]
    assert "Stop requested" in out
    state = json.loads((ckpt.latest_checkpoint(busy_run.run / "checkpoints") / "train_state.json").read_text())
    assert 0 < state["step"] < 100000 / 8


@pytest.mark.slow
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
    second = subprocess.run(_script(run, "resume=auto", f"train.kimg={kimg}"), cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-4000:]
    steps = _steps(run)
    assert steps == list(range(1, logged + 3)), steps  # no step twice
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    assert stale_holder == first.pid and f"taking over a stale lock: its holder, pid {first.pid}" in out


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_and_saves_the_trainer(tmp_path):
    run = tmp_path / "run"
    launcher = _start([*ACCELERATE_LAUNCH, *ONE_PROCESS, *_script(run)[1:]])
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
    return [str(ROOT / "tests" / "_fault_worker.py"), str(out), *LONG, f"run_dir={run}", *args]


@pytest.mark.slow
def test_a_killed_rank_ends_the_other_within_a_bounded_time(tmp_path):
    run, out = tmp_path / "run", tmp_path / "w"
    launcher = _start([*ACCELERATE_LAUNCH, *TWO_PROCESSES, *_worker(run, out)], two_procs=True)
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
        cmd = [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(ROOT / "tests" / "_train_worker.py"), str(out), *args, f"run_dir={run}"]  # fmt: skip
        procs.append(_start(cmd, two_procs=True))
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            _kill_tree(p)
    for p, o in zip(procs, outs):
        assert p.returncode == 0, o[-4000:]
    return outs


@pytest.mark.slow
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


# ----------------------------------------------------------------------------- the lock, in process


def test_a_held_lock_refuses_a_second_trainer_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from maxvit_gan.training.lock import RunDirLockedError, RunLock

    holder = RunLock(tmp_path / "train.lock")
    holder.acquire()
    with pytest.raises(RunDirLockedError, match=rf"in use by another trainer: pid {os.getpid()} \(this process\)"):
        fresh_trainer(run_config(tmp_path, "train.kimg=0.008"))
    holder.release()
    assert not (tmp_path / "train.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "train.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "time": 0}))
    with pytest.warns(UserWarning, match=rf"taking over a stale lock: its holder, pid {int(dead.stdout)} "):
        t = fresh_trainer(run_config(tmp_path, "train.kimg=0.008"))
    t.train()
    assert not (tmp_path / "train.lock").exists()  # released at the end of train()


# ----------------------------------------------------------------------------- an error inside the loop, a second Ctrl-C

# no periodic checkpoint, grid or score: what is saved at the stop is the save made for it
QUIET = ["train.kimg=1", "train.checkpoint_kimg=1", "train.grid_kimg=1", "train.tick_kimg=0.016"]
WORKER_DIED = "DataLoader worker (pid(s) 4242) exited unexpectedly"


def _failing_batches(monkeypatch, after: int):
    """The data fails after ``after`` batches, as when the OOM killer ends a DataLoader worker."""
    from maxvit_gan.training.trainer import Trainer

    real = Trainer._batches

    def batches(self):
        for k, batch in enumerate(real(self)):
            if k == after:
                raise RuntimeError(WORKER_DIED)
            yield batch

    monkeypatch.setattr(Trainer, "_batches", batches)


def test_an_error_inside_the_loop_saves_the_state_first_then_stops_in_one_line(tmp_path, monkeypatch):
    from train_utils import model_state

    _failing_batches(monkeypatch, after=3)
    t = fresh_trainer(run_config(tmp_path, *QUIET))
    with pytest.raises(RuntimeError) as info:  # stopping.TrainingError: exit 3 from the command
        t.train()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"training stopped at step 3 by RuntimeError: {WORKER_DIED}; ")
    assert "the state at step 3 was saved in " in message and message.endswith("continue with resume=auto")
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == ["step-000000003"]
    assert (tmp_path / "train.log").read_text().splitlines()[-1].endswith(f"ERROR: {message}")
    resumed = fresh_trainer(run_config(tmp_path, *QUIET, "resume=auto"))
    assert resumed.resume() and resumed.state["step"] == 3
    resumed.lock.release()
    saved, now = model_state(t), model_state(resumed)
    assert all((saved[k] == now[k]).all() for k in saved)  # the in-memory state, as it was


def test_an_error_inside_the_loop_is_one_error_line_and_exit_3(tmp_path, monkeypatch, capsys):
    from train_utils import run_cli

    _failing_batches(monkeypatch, after=2)
    code, out, err = run_cli(capsys, "train", "experiment=smoke", "train.log_with=none", "data.shapes_num_images=64",
                             *QUIET, f"run_dir={tmp_path}")  # fmt: skip
    errors = [s for s in (out + err).splitlines() if "ERROR" in s]
    assert code == 3 and "Traceback" not in out + err
    assert errors == [f"ERROR: training stopped at step 2 by RuntimeError: {WORKER_DIED}; the state at step 2 was saved "
                      f"in {tmp_path / 'checkpoints' / 'step-000000002'}; continue with resume=auto"]  # fmt: skip


def test_a_second_ctrl_c_during_a_score_stops_at_once_after_a_save(tmp_path, monkeypatch, capsys):
    """The first Ctrl-C asks for a stop after the step (here: after the FID); the second one, during
    the FID, does not wait for it: the state (whole: an FID changes nothing of it) is saved and the
    run ends as a stop does."""
    from maxvit_gan.training import scoring

    reached = []

    def fid(self, generator):  # an FID that takes long: the user presses Ctrl-C twice
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the first Ctrl-C")
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the second Ctrl-C")
        return {self.key: 1.0}

    monkeypatch.setattr(scoring.Scorer, "prepare", lambda self: None, raising=False)  # no feature network
    monkeypatch.setattr(scoring.Scorer, "__call__", fid)
    t = fresh_trainer(run_config(tmp_path, *QUIET, "metrics.fid.every_kimg=0.016", "metrics.fid.num_samples=8"))
    result = t.train()
    assert reached == ["after the first Ctrl-C"]
    assert result["stopped"] and result["step"] == 2
    assert ckpt.verify_checkpoint(tmp_path / "checkpoints" / "step-000000002")["step"] == 2
    out = capsys.readouterr().out
    assert "Stop requested again (SIGINT): stopped at once; the state at step 2 was saved in " in out and "ERROR" not in out


def test_ctrl_c_under_a_launcher_finishes_the_step_then_stops(tmp_path, monkeypatch, capsys):
    """A Ctrl-C in a terminal reaches the trainer (SIGINT) and `accelerate launch`, which then sends
    the trainer SIGTERM: two signals within a step. That is one request: the step is finished
    (not cut between the D and G updates), saved, and the run stops as for one signal, without the
    FID that was due (minutes)."""
    from maxvit_gan.training import scoring
    from maxvit_gan.training import trainer as trainer_mod

    real_d_loss, phases, scored = trainer_mod.d_loss, [], []
    monkeypatch.setattr(scoring.Scorer, "prepare", lambda self: None, raising=False)  # no feature network
    monkeypatch.setattr(scoring.Scorer, "__call__", lambda self, g: scored.append(1) or {self.key: 1.0})

    def d_loss(*a):  # inside the D phase of step 3 (state step 2)
        if len(phases) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
        phases.append("D")
        return real_d_loss(*a)

    monkeypatch.setattr(trainer_mod, "d_loss", d_loss)
    result = fresh_trainer(run_config(tmp_path, *QUIET, "metrics.fid.every_kimg=0.024", "metrics.fid.num_samples=8")).train()
    assert result["stopped"] and result["step"] == 3 and scored == []
    assert ckpt.verify_checkpoint(tmp_path / "checkpoints" / "step-000000003")["step"] == 3
    out = capsys.readouterr().out
    assert "Stop requested: checkpoint saved at step 3; exiting." in out and "ERROR" not in out


@pytest.mark.slow
def test_one_ctrl_c_to_accelerate_launch_stops_cleanly(tmp_path):
    """Ctrl-C in the terminal: SIGINT to the whole foreground process group (launcher, trainer, its
    DataLoader worker); the launcher then sends SIGTERM to the trainer and its worker."""
    run = tmp_path / "run"
    cmd = [*ACCELERATE_LAUNCH, *ONE_PROCESS, *_script(run, "data.num_workers=1")[1:]]
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # a process group of its own, as a terminal's job  # fmt: skip
    try:
        _wait(lambda: len(_steps(run)) >= 2, 180, "the trainer's ticks", [launcher])
        os.killpg(launcher.pid, signal.SIGINT)
        out, _ = launcher.communicate(timeout=90)
    finally:
        _kill_tree(launcher)
    assert "Stop requested: checkpoint saved at step" in out and "ERROR" not in out, out[-3000:]
    newest = ckpt.latest_checkpoint(run / "checkpoints")
    assert ckpt.verify_checkpoint(newest)["step"] == max(_steps(run))


def test_a_worker_killed_during_a_step_stops_the_run_after_the_step(tmp_path, monkeypatch):
    """DataLoader's SIGCHLD handler raises where the main thread is: inside a step it would cut it
    between the D and G updates, and the state saved would be half a step. The error waits for
    the end of the step: what is saved is the state after whole steps, as a run of 3 steps has it."""
    from train_utils import model_state

    from maxvit_gan.training import trainer as trainer_mod

    reference = fresh_trainer(run_config(tmp_path / "ref", *QUIET, "train.kimg=0.024"))
    reference.train()
    real_d_loss, calls = trainer_mod.d_loss, []

    def d_loss(*a):  # inside the D phase of step 3: the OOM killer ends the worker
        calls.append(1)
        if len(calls) == 3:
            me = psutil.Process()
            (worker,) = [c for c in me.children() if c.cmdline() == me.cmdline()]
            worker.kill()
            _wait(lambda: worker.status() == psutil.STATUS_ZOMBIE, 30, "the worker to die")  # SIGCHLD sent
            time.sleep(0.2)  # time for the handler to run, here
        return real_d_loss(*a)

    monkeypatch.setattr(trainer_mod, "d_loss", d_loss)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"training stopped at step 3 by RuntimeError: DataLoader worker .* is killed "
                                           r"by signal: Killed; the state at step 3 was saved"):  # fmt: skip
        fresh_trainer(run_config(run, *QUIET, "data.num_workers=1")).train()
    resumed = fresh_trainer(run_config(run, *QUIET, "resume=auto"))
    assert resumed.resume() and resumed.state["step"] == 3
    resumed.lock.release()
    saved, whole = model_state(resumed), model_state(reference)
    assert all((saved[k] == whole[k]).all() for k in whole)


@pytest.mark.slow
def test_a_killed_dataloader_worker_saves_the_state_and_exits_3_with_one_error_line(tmp_path):
    """As the OOM killer does: SIGKILL to the DataLoader worker of a running trainer (one worker, an
    epoch of 1024 steps: the worker is not replaced while the test looks)."""
    run = tmp_path / "run"
    args = [a for a in LONG if not a.startswith("data.shapes_num_images=")]
    trainer = _start([sys.executable, "-m", "maxvit_gan", "train", *args, "data.shapes_num_images=8192", "data.num_workers=1",
                      f"run_dir={run}"])  # fmt: skip
    worker = None
    try:
        _wait(lambda: len(_steps(run)) >= 2, 180, "the trainer's ticks", [trainer])
        me = psutil.Process(trainer.pid)
        (worker,) = [c for c in me.children() if c.cmdline() == me.cmdline()]  # forked: the same command line
        worker.kill()
        out, _ = trainer.communicate(timeout=120)
    finally:
        _kill_tree(trainer)
    errors = [s for s in out.splitlines() if "ERROR" in s]
    assert trainer.returncode == 3 and "Traceback" not in out and len(errors) == 1, out[-4000:]
    newest = ckpt.latest_checkpoint(run / "checkpoints")
    step = ckpt.verify_checkpoint(newest)["step"]
    assert step >= max(_steps(run))  # the step it was at: saved for the stop
    assert errors[0].startswith(f"ERROR: training stopped at step {step} by RuntimeError: DataLoader worker (pid")
    assert f"{worker.pid}" in errors[0] and f"Killed; the state at step {step} was saved in {newest}" in errors[0]

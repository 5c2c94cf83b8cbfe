"""Fault injection, in process: damaged checkpoints, configs that do not fit, failed writes,
duplicated log lines, out-of-range settings. Each test breaks something the way it breaks for
real and asserts what happens: which checkpoint is used, files intact, weights equal, the message.
(Subprocess faults: tests/test_faults_process.py; data: tests/test_faults_data.py.)"""

from __future__ import annotations

import errno
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from train_utils import fresh_trainer, run_config

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.config import validate_run_config
from maxvit_gan.rundir import RunDir
from maxvit_gan.training import trainer as trainer_mod

# 4 steps of 8 images, a tick per step, checkpoints at steps 2 and 4
FOUR_STEPS = ["train.kimg=0.032", "train.checkpoint_kimg=0.016", "train.tick_kimg=0.008", "train.grid_kimg=1"]


def _weights(trainer) -> dict:
    acc = trainer.accelerator
    out = {}
    for name, module in (("G", acc.unwrap_model(trainer.G)), ("D", acc.unwrap_model(trainer.D)), ("EMA", trainer.ema.module)):
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step run with checkpoints step-2 and step-4 (and its weights at step 4); tests copy it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    t = fresh_trainer(run_config(run, *FOUR_STEPS))
    t.train()
    RunDir(run).write_config(t.cfg)
    return run, _weights(t)


@pytest.fixture
def run(trained, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(trained[0], dest)
    return dest


def _ckpts(run: Path) -> list[str]:
    return [p.name for p in ckpt.list_checkpoints(run / "checkpoints")]


def _flip(path: Path, n: int = 64) -> None:
    """Flip n bytes in the middle of a safetensors file's data (past its JSON header)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    mid = start + (len(data) - start) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    "model_truncated": lambda c: _truncate(c / "model.safetensors"),
    "ema_truncated": lambda c: _truncate(c / "ema.safetensors"),
    "optimizer_empty": lambda c: (c / "optimizer.bin").write_bytes(b""),
    "state_truncated": lambda c: _truncate(c / "train_state.json", 0.6),
    "model_64_bytes_flipped": lambda c: _flip(c / "model.safetensors"),
    "state_digit_changed": lambda c: (c / "train_state.json").write_text(
        (c / "train_state.json").read_text().replace('"nimg": 32', '"nimg": 33')
    ),
}


# ----------------------------------------------------------------------------- checkpoint integrity


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(run, damage):
    newest = run / "checkpoints" / "step-000000004"
    DAMAGE[damage](newest)
    with pytest.warns(UserWarning, match=r"skipping damaged checkpoint step-000000004: .*(safetensors|optimizer|train_state)"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    assert t.resume_choice.path.name == "step-000000002"


def test_fallback_then_training_on_reaches_the_same_weights(run, trained):
    _flip(run / "checkpoints" / "step-000000004" / "model.safetensors")
    with pytest.warns(UserWarning, match="damaged"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    t.train()  # steps 3 and 4 again, from step-2
    assert t.state["step"] == 4
    a, b = trained[1], _weights(t)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    # the damaged one was set aside (kept for inspection, never listed), a good step-4 replaced it
    assert (run / "checkpoints" / ".damaged-step-000000004").is_dir()
    assert _ckpts(run) == ["step-000000002", "step-000000004"]
    ckpt.verify_checkpoint(run / "checkpoints" / "step-000000004")


def test_an_empty_newer_step_dir_is_skipped(run):
    (run / "checkpoints" / "step-000000009").mkdir()
    with pytest.warns(UserWarning, match=r"step-000000009: .*no train_state.json"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    assert t.resume_choice.path.name == "step-000000004"


def test_resume_path_to_a_damaged_checkpoint_is_one_line_naming_the_file(run):
    bad = run / "checkpoints" / "step-000000004"
    _truncate(bad / "model.safetensors")
    with pytest.raises(ckpt.CheckpointError) as err:
        fresh_trainer(run_config(run, *FOUR_STEPS, f"resume={bad}"))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("resume: ") and str(bad / "model.safetensors") in msg


def test_no_intact_checkpoint_is_an_error_not_a_fresh_start(run):
    for c in (run / "checkpoints").iterdir():
        (c / "optimizer.bin").write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match=r"no intact checkpoint .*step-000000002.*optimizer.bin"):
        fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))


def test_starting_afresh_over_a_run_with_checkpoints_is_refused(run):
    with pytest.raises(ckpt.CheckpointError, match=r"already holds checkpoints .*resume=auto"):
        fresh_trainer(run_config(run, *FOUR_STEPS))


def test_leftovers_of_an_interrupted_save_are_cleaned_at_start(run):
    cdir = run / "checkpoints"
    shutil.copytree(cdir / "step-000000004", cdir / ".tmp-step-000000006")  # killed while writing step 6
    shutil.copytree(cdir / "step-000000002", cdir / ".old-step-000000002")  # killed while re-saving step 2
    (run / ".generator_ema.safetensors.tmp-99999").write_bytes(b"partial")  # killed while writing it
    (run / "samples" / ".fakes00000.040.png.tmp-99999").write_bytes(b"partial")
    t = fresh_trainer(run_config(run, *FOUR_STEPS, "train.kimg=0.04", "resume=auto"))
    t.train()
    assert not [p.name for p in cdir.iterdir() if p.name.startswith(".")]
    assert not [p.name for p in [*run.iterdir(), *(run / "samples").iterdir()] if ".tmp-" in p.name]
    assert t.resume_choice.path.name == "step-000000004"


def test_old_copy_is_restored_when_the_resave_was_cut_between_renames(run):
    cdir = run / "checkpoints"
    (cdir / "step-000000004").rename(cdir / ".old-step-000000004")
    assert ckpt.clean_partial_checkpoints(cdir) == []
    assert _ckpts(run) == ["step-000000002", "step-000000004"]


def test_unverified_load_of_a_damaged_file_is_one_line(run):
    bad = run / "checkpoints" / "step-000000004"
    _truncate(bad / "ema.safetensors")
    t = fresh_trainer(run_config(run / "other", *FOUR_STEPS))
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(t.accelerator, bad, t.ema.module, verify=False)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    t.lock.release()


# ----------------------------------------------------------------------------- keep_checkpoints


def test_keep_checkpoints_zero_is_refused():
    with pytest.raises(ValueError, match=r"train.keep_checkpoints: must be >= 1, got 0"):
        validate_run_config(run_config("unused", "train.keep_checkpoints=0"), 1)
    with pytest.raises(ValueError, match="keep_checkpoints"):
        ckpt.prune_checkpoints("unused", 0)


def test_keep_one_keeps_the_checkpoint_just_written_and_resumes_from_it(tmp_path):
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS, "train.keep_checkpoints=1"))
    t.state.update(best_step=1)  # a 'best' checkpoint that no longer exists must not cost the newest
    t.train()
    assert _ckpts(tmp_path) == ["step-000000004"]
    t2 = fresh_trainer(run_config(tmp_path, *FOUR_STEPS, "train.kimg=0.04", "resume=auto"))
    t2.train()
    assert t2.resume_choice.path.name == "step-000000004" and t2.state["step"] == 5


# ----------------------------------------------------------------------------- a config that does not fit


@pytest.mark.parametrize(
    "override,named",
    [
        ("model.generator.channels=[32,32,16]", r"model\.generator\.channels is \[.*\] in the checkpoint, \[32, 32, 16\] now"),
        ("loss.class_weight=0.3", r"loss\.class_weight=0\.3: the checkpoint's D has no class head, this run's has"),
        ("data.resolution=16", r"data\.resolution is 32 in the checkpoint, 16 now"),
    ],
)
def test_a_config_that_does_not_fit_the_checkpoint_is_one_line_before_any_write(run, override, named):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ckpt.CheckpointError, match=named) as err:
        fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto", override))
    assert "\n" not in str(err.value)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing left behind (the lock is gone too)


def test_a_checkpoint_without_stored_settings_is_refused_in_one_line(run):
    c = run / "checkpoints" / "step-000000004"
    state = json.loads((c / "train_state.json").read_text())
    del state["model"]  # not written by this version: no settings to check the configuration against
    state["state_sha256"] = ckpt._state_digest(state)
    (c / "train_state.json").write_text(json.dumps(state))
    with pytest.raises(ckpt.CheckpointError, match=r"step-000000004 records no model settings") as err:
        fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- logs after a kill


def test_no_duplicated_steps_in_metrics_after_resuming_an_older_checkpoint(run):
    # as after kill -9 between the step-4 tick and its checkpoint: the log reaches step 4, the
    # newest checkpoint is step 2
    shutil.rmtree(run / "checkpoints" / "step-000000004")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kimg": 0.04, "step": 5, "loss_D"')  # a line torn by the kill
    t = fresh_trainer(run_config(run, *FOUR_STEPS, "train.kimg=0.048", "resume=auto"))
    t.train()
    steps = [r["step"] for r in RunDir(run).read_metrics()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_tensorboard_purges_steps_logged_after_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [*FOUR_STEPS, "train.log_with=tensorboard"]
    fresh_trainer(run_config(tmp_path, *overrides)).train()  # steps 1-4 logged, checkpoints 2 and 4
    shutil.rmtree(tmp_path / "checkpoints" / "step-000000004")
    fresh_trainer(run_config(tmp_path, *overrides, "resume=auto")).train()  # steps 3, 4 again
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss_D")] == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- writes that fail


def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_grid_write_does_not_stop_training_and_the_final_checkpoint_is_saved(tmp_path, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def save(self, fp, *a, **k):
        if "fakes" in str(fp):
            _disk_full()
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS, "train.grid_kimg=0.016"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train()
    assert t.state["step"] == 4 and _ckpts(tmp_path) == ["step-000000002", "step-000000004"]
    assert any("No space left on device" in str(w.message) and "fakes" in str(w.message) for w in caught)
    assert not list((tmp_path / "samples").glob("*fakes*"))  # no partial grid either


def test_grids_are_written_atomically(tmp_path, monkeypatch):
    order = []
    from maxvit_gan import files

    real_replace = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (order.append((Path(a).name, Path(b).name)), real_replace(a, b)))
    fresh_trainer(run_config(tmp_path, "train.kimg=0.008")).train()
    assert any(src.startswith(".fakes") and dst.startswith("fakes") for src, dst in order)


def test_the_final_checkpoint_is_saved_before_the_final_grid(tmp_path, monkeypatch):
    events = []
    real_grid, real_save = trainer_mod.Trainer.write_fakes_grid, trainer_mod.Trainer.save
    monkeypatch.setattr(trainer_mod.Trainer, "write_fakes_grid", lambda self, lg: (events.append("grid"), real_grid(self, lg))[1])
    monkeypatch.setattr(trainer_mod.Trainer, "save", lambda self, **k: (events.append("ckpt"), real_save(self, **k))[1])
    fresh_trainer(run_config(tmp_path, "train.kimg=0.016", "train.checkpoint_kimg=1", "train.grid_kimg=1")).train()
    assert events == ["grid", "ckpt", "grid"]  # kimg 0 grid, then at the end: checkpoint first


def test_a_failed_periodic_checkpoint_is_a_warning_and_leaves_no_partial_directory(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ckpt.save_file

    def flaky(*a, **k):  # the EMA file of the first checkpoint cannot be written
        calls["n"] += 1
        if calls["n"] == 1:
            _disk_full()
        return real(*a, **k)

    monkeypatch.setattr(ckpt, "save_file", flaky)
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS))
    with pytest.warns(UserWarning, match=r"could not write checkpoint .*step-000000002 .*No space left.*training continues"):
        t.train()
    assert _ckpts(tmp_path) == ["step-000000004"] and t.state["step"] == 4
    assert not [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_failed_final_checkpoint_is_an_error_naming_the_last_good_one(tmp_path, monkeypatch):
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS))
    real = ckpt.save_file
    monkeypatch.setattr(ckpt, "save_file", lambda *a, **k: _disk_full() if t.state["step"] == 4 else real(*a, **k))
    with pytest.raises(ckpt.CheckpointWriteError, match=r"step-000000004 .*newest intact checkpoint is .*step-000000002"):
        t.train()
    assert _ckpts(tmp_path) == ["step-000000002"]
    assert not [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    ckpt.verify_checkpoint(tmp_path / "checkpoints" / "step-000000002")


def test_a_failed_metrics_write_is_a_warning(tmp_path, monkeypatch):
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, s):
            _disk_full()

        def __getattr__(self, name):
            return getattr(self.f, name)

    from maxvit_gan.training import trackers

    monkeypatch.setattr(trackers, "open", lambda p, m="r", *a, **k: Full(real_open(p, m, *a, **k)) if "a" in m else real_open(p, m, *a, **k), raising=False)
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.016"))
    with pytest.warns(UserWarning, match="could not write a line"):
        t.train()
    assert _ckpts(tmp_path) == ["step-000000002"]


# ----------------------------------------------------------------------------- numeric settings


@pytest.mark.parametrize(
    "override,line",
    [
        ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
        ("train.batch_size=-8", "train.batch_size: must be >= 1, got -8"),
        ("train.grad_accum=0", "train.grad_accum: must be >= 1, got 0"),
        ("loss.r1_interval=0", "loss.r1_interval: must be >= 1, got 0"),
        ("train.kimg=-1", "train.kimg: must be > 0, got -1.0"),
        ("train.kimg=0", "train.kimg: must be > 0, got 0.0"),
        ("train.tick_kimg=-1", "train.tick_kimg: must be >= 0"),
        ("train.grid_rows=0", "train.grid_rows: must be >= 1, got 0"),
        ("optim.g_lr=0", "optim.g_lr: must be > 0, got 0.0"),
        ("optim.betas=[0.5,1.5]", "optim.betas: must be two numbers in [0, 1)"),
        ("train.ema_half_life_kimg=0", "train.ema_half_life_kimg: must be > 0"),
        ("train.ema_decay=1.5", "train.ema_decay: must be in [0, 1] or null, got 1.5"),
        ("data.num_workers=-1", "data.num_workers: must be >= 0, got -1"),
        ("train.cpu_threads=0", "train.cpu_threads: must be >= 1 or null, got 0"),
        ("loss.r1_gamma=-1", "loss.r1_gamma: must be >= 0, got -1.0"),
        ("train.kimg=inf", "train.kimg: must be a finite number > 0, got inf"),
        ("metrics.fid.num_samples=0", "metrics.fid.num_samples: must be >= 1, got 0"),
    ],
)
def test_out_of_range_numbers_are_one_line_each(override, line):
    with pytest.raises(ValueError) as err:
        validate_run_config(run_config("unused", override), 1)
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_every_bad_number_is_reported_at_once():
    with pytest.raises(ValueError) as err:
        validate_run_config(run_config("unused", "train.batch_size=0", "train.grad_accum=0", "loss.r1_interval=0"), 1)
    assert [s.split(":")[0] for s in str(err.value).splitlines()] == ["train.batch_size", "train.grad_accum", "loss.r1_interval"]


# ----------------------------------------------------------------------------- the script's order of work


def _train_script(run: Path, *args):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "scripts/train_gan.py", "experiment=smoke", "data.shapes_num_images=64",
                           "train.log_with=none", f"hydra.run.dir={run}", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_script_refuses_a_mismatched_resume_before_overwriting_the_config(run):
    config_before = (run / "config_resolved.yaml").read_text()
    proc = _train_script(run, *FOUR_STEPS, "resume=auto", "model.generator.channels=[32,32,16]", "seed=1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "model.generator.channels is [" in errors[0] and "Traceback" not in out, out[-3000:]
    assert (run / "config_resolved.yaml").read_text() == config_before
    assert _ckpts(run) == ["step-000000002", "step-000000004"]


@pytest.mark.slow
def test_script_with_a_zero_batch_size_stops_before_any_work(tmp_path):
    proc = _train_script(tmp_path / "r", "train.batch_size=0", "train.grad_accum=0")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "train.batch_size: must be >= 1, got 0" in out and "train.grad_accum: must be >= 1, got 0" in out
    assert "ZeroDivisionError" not in out
    assert not (tmp_path / "r" / "checkpoints").exists() and not (tmp_path / "r" / "config_resolved.yaml").exists()


# ----------------------------------------------------------------------------- a shared CPU


def test_cpu_threads_follow_what_other_processes_use(monkeypatch):
    from maxvit_gan.training import threads as cpu

    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(cpu, "_affinity", lambda: [0, 1])
    monkeypatch.setattr(cpu, "_busy_seconds", lambda cpus: clock["busy"])
    monkeypatch.setattr(cpu, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(cpu.time, "monotonic", lambda: clock["t"])
    set_to = []
    monkeypatch.setattr(cpu.torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(cpu.torch, "get_num_threads", lambda: 2)
    gov = cpu.ThreadGovernor(2, interval_s=5)

    def run(seconds, ours, others):
        clock["t"] += seconds
        clock["own"] += seconds * ours
        clock["busy"] += seconds * (ours + others)
        return gov.update()

    assert run(5, ours=2.0, others=0.1) is None and gov.threads == 2  # quiet: both cores stay ours
    note = run(5, ours=1.3, others=1.0)  # a busy neighbour appears: one thread at once
    assert gov.threads == 1 and set_to == [1] and "other processes use 1.0 of 2 cores; torch threads 2 -> 1" in note
    assert run(5, ours=1.0, others=0.1) is None and gov.threads == 1  # gone: wait for a second look
    assert run(5, ours=1.0, others=0.1) is not None and gov.threads == 2 and set_to == [1, 2]
    assert run(1, ours=1.0, others=2.0) is None  # not before the interval
    assert not cpu.ThreadGovernor(1).enabled  # nothing to govern with one thread


def test_a_fixed_thread_count_is_left_alone(tmp_path):
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.008", "train.cpu_threads=1"))
    assert not t.threads.enabled
    t.lock.release()


def test_a_real_busy_neighbour_is_seen():
    import subprocess
    import sys
    import time

    from maxvit_gan.training.threads import ThreadGovernor

    gov = ThreadGovernor(2, interval_s=1.0)
    if not gov.enabled:
        pytest.skip("no /proc/stat")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        gov._mark()
        time.sleep(1.5)
        gov.update()
    finally:
        busy.kill()
        busy.wait()
    assert gov.others > 0.5 and gov.proposal(gov.others) == 1


# ----------------------------------------------------------------------------- the lock, in process


def test_a_held_lock_refuses_a_second_trainer_and_a_dead_holders_lock_is_taken_over(tmp_path):
    import os
    import socket
    import subprocess
    import sys

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

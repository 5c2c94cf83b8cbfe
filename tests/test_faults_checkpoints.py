"""Fault injection, subject: checkpoints and resume. What belongs here: a checkpoint damaged,
partial, empty or missing; which checkpoint resume=auto / resume=PATH picks; what an interrupted
save leaves; keep_checkpoints; a configuration that does not fit the checkpoint. Each test breaks
something the way it breaks for real (mostly on a copy of conftest.four_step_run: checkpoints
step-2 and step-4) and asserts what happens: which checkpoint is used, files intact, weights equal,
the message. (Writes that fail: test_faults_writes.py; processes killed: test_faults_process.py.)"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from fault_utils import FOUR_STEPS, checkpoint_names, flip_bytes, tree_hash, truncate
from train_utils import SMOKE, copy_run, fresh_trainer, model_state, run_config, run_script

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.config import validate_run_config


@pytest.fixture
def run(four_step_run, tmp_path):
    """A copy of the 4-step run (checkpoints step-2 and step-4) to damage."""
    return copy_run(four_step_run.path, tmp_path / "run")


DAMAGE = {
    "model_truncated": lambda c: truncate(c / "model.safetensors"),
    "ema_truncated": lambda c: truncate(c / "ema.safetensors"),
    "optimizer_empty": lambda c: (c / "optimizer.bin").write_bytes(b""),
    "state_truncated": lambda c: truncate(c / "train_state.json", 0.6),
    "model_64_bytes_flipped": lambda c: flip_bytes(c / "model.safetensors"),
    "state_digit_changed": lambda c: (c / "train_state.json").write_text(
        (c / "train_state.json").read_text().replace('"nimg": 32', '"nimg": 33')
    ),
}


# ----------------------------------------------------------------------------- damaged checkpoints


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_auto_falls_back_to_the_newest_intact_checkpoint(run, damage):
    newest = run / "checkpoints" / "step-000000004"
    DAMAGE[damage](newest)
    with pytest.warns(UserWarning, match=r"skipping damaged checkpoint step-000000004: .*(safetensors|optimizer|train_state)"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    assert t.resume_choice.path.name == "step-000000002"


def test_fallback_then_training_on_reaches_the_same_weights(run, four_step_run):
    flip_bytes(run / "checkpoints" / "step-000000004" / "model.safetensors")
    with pytest.warns(UserWarning, match="damaged"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    t.train()  # steps 3 and 4 again, from step-2
    assert t.state["step"] == 4
    a, b = four_step_run.weights, model_state(t)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    # the damaged one was set aside (kept for inspection, never listed), a good step-4 replaced it
    assert (run / "checkpoints" / ".damaged-step-000000004").is_dir()
    assert checkpoint_names(run) == ["step-000000002", "step-000000004"]
    ckpt.verify_checkpoint(run / "checkpoints" / "step-000000004")


def test_an_empty_newer_step_dir_is_skipped(run):
    (run / "checkpoints" / "step-000000009").mkdir()
    with pytest.warns(UserWarning, match=r"step-000000009: .*no train_state.json"):
        t = fresh_trainer(run_config(run, *FOUR_STEPS, "resume=auto"))
    assert t.resume_choice.path.name == "step-000000004"


def test_resume_path_to_a_damaged_checkpoint_is_one_line_naming_the_file(run):
    bad = run / "checkpoints" / "step-000000004"
    truncate(bad / "model.safetensors")
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


def test_unverified_load_of_a_damaged_file_is_one_line(run):
    bad = run / "checkpoints" / "step-000000004"
    truncate(bad / "ema.safetensors")
    t = fresh_trainer(run_config(run / "other", *FOUR_STEPS))
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(t.accelerator, bad, t.ema.module, verify=False)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    t.lock.release()


# ----------------------------------------------------------------------------- interrupted saves


def test_interrupted_save_leaves_previous_checkpoint_whole(tmp_path, monkeypatch):
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.016"))
    t.train()
    good = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    before = tree_hash(good)

    def crash(*a, **k):
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(t.accelerator, "save_state", crash)
    t.state["step"] += 1
    with pytest.raises(KeyboardInterrupt):
        t.save()
    assert ckpt.list_checkpoints(tmp_path / "checkpoints") == [good] and tree_hash(good) == before
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints") == good  # the partial .tmp-* is never picked


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
    assert checkpoint_names(run) == ["step-000000002", "step-000000004"]


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
    assert checkpoint_names(tmp_path) == ["step-000000004"]
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


@pytest.mark.slow
def test_script_refuses_a_mismatched_resume_before_overwriting_the_config(run, capsys):
    """scripts/train_gan.py (in this process): the check comes before the config is written."""
    config_before = (run / "config_resolved.yaml").read_text()
    code, stdout, stderr = run_script(capsys, "train_gan.py", *SMOKE, f"hydra.run.dir={run}", *FOUR_STEPS, "resume=auto",
                                      "model.generator.channels=[32,32,16]", "seed=1")  # fmt: skip
    out = stdout + stderr
    assert code != 0
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "model.generator.channels is [" in errors[0] and "Traceback" not in out, out[-3000:]
    assert (run / "config_resolved.yaml").read_text() == config_before
    assert checkpoint_names(run) == ["step-000000002", "step-000000004"]

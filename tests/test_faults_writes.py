"""Fault injection, subject: logs and writes. What belongs here: a write that fails (disk full: a
sample grid, a metrics line, a checkpoint, periodic or final), files written atomically and in a
safe order, and logs that stay right after a resume (each step once in metrics.jsonl, TensorBoard
purged). (Which checkpoint is resumed: test_faults_checkpoints.py.)"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from fault_utils import FOUR_STEPS, checkpoint_names, disk_full
from train_utils import copy_run, fresh_trainer, run_config

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.rundir import RunDir
from maxvit_gan.training import trainer as trainer_mod


@pytest.fixture
def run(four_step_run, tmp_path):
    """A copy of the 4-step run (checkpoints step-2 and step-4, a metrics line per step)."""
    return copy_run(four_step_run.path, tmp_path / "run")


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


def test_a_failed_grid_write_does_not_stop_training_and_the_final_checkpoint_is_saved(tmp_path, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save

    def save(self, fp, *a, **k):
        if "fakes" in str(fp):
            disk_full()
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS, "train.grid_kimg=0.016"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train()
    assert t.state["step"] == 4 and checkpoint_names(tmp_path) == ["step-000000002", "step-000000004"]
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
            disk_full()
        return real(*a, **k)

    monkeypatch.setattr(ckpt, "save_file", flaky)
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS))
    with pytest.warns(UserWarning, match=r"could not write checkpoint .*step-000000002 .*No space left.*training continues"):
        t.train()
    assert checkpoint_names(tmp_path) == ["step-000000004"] and t.state["step"] == 4
    assert not [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_failed_final_checkpoint_is_an_error_naming_the_last_good_one(tmp_path, monkeypatch):
    t = fresh_trainer(run_config(tmp_path, *FOUR_STEPS))
    real = ckpt.save_file
    monkeypatch.setattr(ckpt, "save_file", lambda *a, **k: disk_full() if t.state["step"] == 4 else real(*a, **k))
    with pytest.raises(ckpt.CheckpointWriteError, match=r"step-000000004 .*newest intact checkpoint is .*step-000000002"):
        t.train()
    assert checkpoint_names(tmp_path) == ["step-000000002"]
    assert not [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    ckpt.verify_checkpoint(tmp_path / "checkpoints" / "step-000000002")


def test_a_failed_metrics_write_is_a_warning(tmp_path, monkeypatch):
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, s):
            disk_full()

        def __getattr__(self, name):
            return getattr(self.f, name)

    from maxvit_gan.training import trackers

    monkeypatch.setattr(trackers, "open", lambda p, m="r", *a, **k: Full(real_open(p, m, *a, **k)) if "a" in m else real_open(p, m, *a, **k), raising=False)
    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.016"))
    with pytest.warns(UserWarning, match="could not write a line"):
        t.train()
    assert checkpoint_names(tmp_path) == ["step-000000002"]


# ----------------------------------------------------------------------------- permissions and TensorBoard runs


def test_every_file_the_product_writes_follows_the_umask(tmp_path):
    """On a shared machine the others may read what the umask lets them (022 -> 0644): safetensors
    and tempfile.mkstemp write 0600 whatever the umask. Umask 002 here, so 0664 tells a file that
    follows it from both 0600 and a hard-coded 0644: a run (checkpoint, generator, grids, logs,
    TensorBoard), an export, the FID and SWD reference caches, a prepared zip."""
    import os
    import stat

    import numpy as np
    import torch
    from PIL import Image

    from maxvit_gan.config import ExportConfig
    from maxvit_gan.data.prepare import prepare_dataset
    from maxvit_gan.export import export_generator
    from maxvit_gan.metrics.reference import save_reference
    from maxvit_gan.metrics.swd import SWDDescriptors, SWDReference, _save_cache

    old = os.umask(0o002)
    try:
        images = tmp_path / "images"
        images.mkdir()
        for i in range(2):
            Image.new("RGB", (12, 12), (40 * i, 80, 120)).save(images / f"{i}.png")
        run = tmp_path / "run"
        cfg = run_config(run, "train.kimg=0.008", "train.checkpoint_kimg=0.008", "train.tick_kimg=0.008",
                         "train.grid_kimg=1", "train.log_with=tensorboard")  # fmt: skip
        trainer = fresh_trainer(cfg)
        trainer.train()
        RunDir(run).write_config(trainer.cfg)
        export_generator(ExportConfig(run=str(run), out=str(tmp_path / "export"), seeds="0-3"))
        save_reference(tmp_path / "cache" / "fid_ref.npz", np.zeros(2), np.eye(2), n=2)
        levels = SWDDescriptors({16: torch.zeros(2, 147)}, num_images=1, patches_per_image=2, seed=0)
        _save_cache(tmp_path / "cache" / "swd_ref.npz", SWDReference(levels, {}, num_images=1, seed=0))
        prepare_dataset(str(images), str(tmp_path / "data.zip"), 8, workers=0, progress=False)
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert "run/checkpoints/step-000000001/model.safetensors" in modes and "export/model.safetensors" in modes
    assert {"cache/fid_ref.npz", "cache/swd_ref.npz", "data.zip", "run/generator_ema.safetensors"} <= set(modes)
    wrong = {name: oct(mode) for name, mode in modes.items() if mode != 0o664}
    assert not wrong, " ".join(f"{k}: {v}" for k, v in sorted(wrong.items()))


def test_a_training_and_its_resumes_are_one_tensorboard_run(tmp_path):
    """TensorBoard shows a folder with event files as a run: Accelerate's tracker put the config
    (hparams) into a new timestamp folder (plus an hparams.yml folder) at every start, so one
    training resumed once showed three runs. Now: one folder, the config in it, each step once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = ["train.checkpoint_kimg=0.008", "train.tick_kimg=0.008", "train.grid_kimg=1", "train.log_with=tensorboard"]
    fresh_trainer(run_config(tmp_path, "train.kimg=0.016", *steps)).train()
    fresh_trainer(run_config(tmp_path, "train.kimg=0.032", "resume=auto", *steps)).train()
    board = tmp_path / "tensorboard"
    runs = {p.parent for p in board.rglob("events.out.tfevents.*")}
    assert runs == {board} and [p.name for p in board.iterdir() if not p.name.startswith("events.out.tfevents.")] == []
    acc = EventAccumulator(str(board))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss_D")] == [1, 2, 3, 4]
    assert acc.PluginTagToContent("hparams")  # the config is in the run itself
# ----------------------------------------------------------------------------- speed and progress


def test_the_tick_after_a_score_keeps_its_speed_and_the_bar_moves_every_step(tmp_path, monkeypatch):
    """A fake clock: a step costs 1 s, an FID 1000 s, a checkpoint 100 s, a grid 10 s. Every
    tick (2 steps of 8 images) then reads 2 s / 0.016 kimg = 125 sec/kimg, the ticks after a
    score or a checkpoint too; the progress bar is told every step's kimg."""
    from types import SimpleNamespace

    from maxvit_gan.training import scoring, trackers

    clock = {"t": 1000.0}
    monkeypatch.setattr(trainer_mod, "time", SimpleNamespace(time=lambda: clock["t"]))

    def costs(fn, seconds):
        def timed(*a, **k):
            clock["t"] += seconds
            return fn(*a, **k)

        return timed

    T = trainer_mod.Trainer
    for name, seconds in (("train_step", 1), ("save", 100), ("write_fakes_grid", 10)):
        monkeypatch.setattr(T, name, costs(getattr(T, name), seconds))
    monkeypatch.setattr(scoring.Scorer, "prepare", lambda self: None, raising=False)  # no feature network
    monkeypatch.setattr(scoring.Scorer, "__call__", costs(lambda self, g: {self.key: 50.0}, 1000))
    bar = []
    monkeypatch.setattr(trackers.RunLogger, "advance", lambda self, kimg: bar.append(kimg))
    cfg = run_config(tmp_path, "train.kimg=0.064", "train.tick_kimg=0.016", "metrics.fid.every_kimg=0.016",
                     "metrics.fid.num_samples=8", "train.checkpoint_kimg=0.032", "train.grid_kimg=0.024")  # fmt: skip
    fresh_trainer(cfg).train()
    rows = RunDir(tmp_path).read_metrics()
    assert sum("fid8" in r for r in rows) == 4
    assert [r["sec_per_kimg"] for r in rows if "loss_D" in r] == [125.0] * 4
    assert bar == [8 * k / 1000 for k in range(1, 9)]


@pytest.mark.parametrize("batch, kimg", [(8, 0.030), (64, 32.0)])  # the last batch ends past kimg; 500 steps
def test_the_progress_bar_never_passes_its_total(tmp_path, monkeypatch, batch, kimg):
    import io
    import sys

    from maxvit_gan.training.trackers import RunLogger

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    logger = RunLogger(RunDir(tmp_path), True, kimg, 0.0)
    assert logger.bar is not None and not logger.bar.disable
    seen, nimg = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "clamping frac to range [0, 1]" (TqdmWarning) fails the test
        while nimg < kimg * 1000:
            nimg += batch
            logger.advance(nimg / 1000)
            seen.append(logger.bar.n)
        logger.close()
    assert max(seen) <= kimg and seen[-1] == kimg
    shown = sys.stderr.getvalue()
    assert "100%" in shown and "101%" not in shown


@pytest.mark.parametrize("classes", [0, 2])
def test_reals_grid_of_a_tiny_dataset_repeats_no_image(classes):
    """reals.png of a dataset smaller than the grid: each real image once, the other cells white
    (image 0 filled every empty cell)."""
    import numpy as np
    import torch

    from maxvit_gan.training.grids import reals_grid

    class Tiny:  # 3 images of 4x4 px, each its own grey level; labels 0, 1, 0 when conditional
        labels = [0, 1, 0]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.full((3, 4, 4), 40 * (i + 1), dtype=torch.uint8), self.labels[i]

    grid = np.asarray(reals_grid(Tiny(), rows=4, cols=4, num_classes=classes))
    levels = [int(grid[4 * r, 4 * c, 0]) for r in range(4) for c in range(4)]
    assert sorted(v for v in levels if v != 255) == [40, 80, 120]  # each image once
    assert levels.count(255) == 13

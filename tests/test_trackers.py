"""train.log_with: scalars and sample grids go to Accelerate's trackers (TensorBoard by default)."""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from train_utils import fresh_trainer, run_config

from maxvit_gan.rundir import RunDir
from maxvit_gan.training import trackers
from maxvit_gan.training.trainer import RunLogger


def test_log_with_names(monkeypatch):
    for off in (None, "", "none", "None", "false"):
        assert trackers.tracker_names(off) == []
    with pytest.raises(ValueError, match=r"^train.log_with: unknown tracker 'tensorbord'; choose from .*tensorboard.*wandb"):
        trackers.tracker_names("tensorbord")
    monkeypatch.setattr(trackers, "_available", lambda: {"tensorboard", "mlflow"})
    assert trackers.tracker_names("tensorboard, mlflow,tensorboard") == ["tensorboard", "mlflow"]
    assert trackers.tracker_names("all") == ["mlflow", "tensorboard"]
    with pytest.raises(ValueError, match=r"^train.log_with: wandb is not installed \(pip install wandb\)"):
        trackers.tracker_names("tensorboard,wandb")
    monkeypatch.setattr(trackers, "_available", lambda: set())
    with pytest.warns(UserWarning, match="tensorboard is not installed"):  # the default: optional, training goes on
        assert trackers.tracker_names("tensorboard") == []


class _Tracker:
    """What a W&B-like tracker receives."""

    name = "wandb"

    def __init__(self):
        self.logs, self.images, self.finished = [], [], False

    def log(self, values, step=None):
        self.logs.append((step, values))

    def log_images(self, values, step=None):
        self.images.append((step, values))

    def finish(self):
        self.finished = True


def test_run_logger_feeds_every_tracker(tmp_path):
    fake = _Tracker()
    started = {}
    acc = SimpleNamespace(log_with=["wandb"], trackers=[fake], init_trackers=lambda project, config, init_kwargs: started.update(project=project, config=config))
    cfg = run_config(tmp_path / "run", "train.tracker_project=shapes")
    logger = RunLogger(RunDir(tmp_path / "run"), True, 1.0, 0.0, acc, cfg)
    assert started["project"] == "shapes" and started["config"]["train.batch_size"] == cfg.train.batch_size
    assert started["config"]["model.generator.channels"] == str(cfg.model.generator.channels)
    logger.record({"kimg": 0.5, "step": 4, "loss_D": 1.25, "note": "x"}, 4)
    logger.image("samples/ema", Image.new("RGB", (8, 8), (255, 0, 0)), 4)
    logger.close()
    assert fake.logs == [(4, {"kimg": 0.5, "loss_D": 1.25})]
    (step, images), = fake.images
    assert step == 4 and np.asarray(images["samples/ema"][0]).shape == (8, 8, 3)
    assert fake.finished and acc.trackers == []


def test_scalars_and_grids_reach_tensorboard(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    cfg = run_config(run, "train.log_with=tensorboard", "train.kimg=0.016", "train.tick_kimg=0.008",
                     "train.grid_kimg=0.008", "train.checkpoint_kimg=1")  # fmt: skip
    trainer = fresh_trainer(cfg)
    trainer.train()
    trainer.accelerator.end_training()
    events = [p for p in (run / "tensorboard").rglob("events.out.tfevents.*") if p.parent == run / "tensorboard"]
    assert events
    ea = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    assert {"loss_D", "loss_G", "r1", "img_per_s", "kimg"} <= set(ea.Tags()["scalars"])
    assert [e.step for e in ea.Scalars("loss_D")] == [1, 2]
    assert "samples/ema" in ea.Tags()["images"] and len(ea.Images("samples/ema")) == 3  # kimg 0, 0.008, 0.016

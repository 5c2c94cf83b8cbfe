"""recipe=auto (training/recipe.py, the default experiment): what it picks from the data, the device
and the processes; what it keeps; a zip's own resolution; the values stored in the run."""

import dataclasses

import pytest
from PIL import Image
from train_utils import fresh_trainer

from maxvit_gan.config import compose
from maxvit_gan.data.prepare import prepare_dataset
from maxvit_gan.training.recipe import DataFacts, apply_recipe, choose


def _without_record(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    for key in ("experiment", "recipe", "overrides"):
        d.pop(key)
    return d


def test_the_default_is_the_cpu_demo_recipe_value_for_value():
    auto = compose("train")
    assert (auto.experiment, auto.recipe) == ("auto", "auto")
    apply_recipe(auto, DataFacts(32, 50000, 4), 1, "cpu")  # the shapes dataset, one CPU process
    pinned = compose("train", ["experiment=shapes_cpu"])
    assert pinned.recipe == "none" and _without_record(auto) == _without_record(pinned)


def test_what_the_command_line_gives_is_kept():
    cfg = compose("train", ["train.batch_size=8", "loss.r1_gamma=3", "model.generator.channels=[32,32,16]"])
    lines = apply_recipe(cfg, DataFacts(32, 1000, 0), 1, "cpu")
    assert (cfg.train.batch_size, cfg.loss.r1_gamma) == (8, 3)
    assert cfg.model.generator.channels == [32, 32, 16] and cfg.model.generator.window_sizes is None  # one unit
    assert cfg.model.discriminator.channel_base == 512 and cfg.model.generator.upsample == "bilinear"  # still chosen
    assert cfg.optim.g_lr == 5e-4 and cfg.loss.class_weight == 0.0  # chosen: unconditional data
    assert cfg.loss.ada_target == 0.6 and cfg.loss.ada_kimg == 20  # 1,000 images: ADA
    assert "train.batch_size" in lines[1] and "train.batch_size=" not in lines[0]
    model_group = compose("train", ["model=s"])
    apply_recipe(model_group, DataFacts(32, 1000, 0), 1, "cpu")
    assert model_group.model.preset == "s" and model_group.model.generator.channels is None
    assert model_group.model.discriminator.channel_base is None  # the preset's own D


def test_rules_follow_resolution_size_classes_and_processes():
    at64 = choose(DataFacts(64, 60000, 0), 1, "cpu")
    assert at64["model.generator.channels"] == [64, 64, 32, 32] and at64["model.generator.window_sizes"] == [4, 4, 0, 0]
    assert at64["loss.r1_gamma"] == 4.0 and at64["model.discriminator.channel_base"] == 512  # res^2 / (64 batch); 8 at 64 px
    few = choose(DataFacts(64, 3800, 0), 1, "cpu")  # fewer than 50,000 images on a CPU: R1 x4, D twice as wide
    assert few["loss.r1_gamma"] == 16.0 and few["model.discriminator.channel_base"] == 1024
    assert choose(DataFacts(32, 49999, 3), 1, "cpu")["loss.r1_gamma"] == 4.0
    assert choose(DataFacts(32, 3800, 0), 1, "cuda")["loss.r1_gamma"] == round(32 * 32 / (64 * 32), 6)  # GPUs: not measured
    assert choose(DataFacts(32, 3800, 0), 3, "cpu")["train.batch_size"] == 18  # a multiple of the processes
    big = choose(DataFacts(32, 60000, 10), 1, "cpu")
    assert big["loss.ada_target"] == 0 and big["loss.class_weight"] == 1.0 and big["train.ema_half_life_kimg"] == 2.0
    gpu = choose(DataFacts(128, 1_281_167, 1000), 8, "cuda")
    assert (gpu["model.preset"], gpu["train.batch_size"], gpu["train.mixed_precision"]) == ("b", 64, "bf16")
    assert gpu["train.ema_half_life_kimg"] == 20.0 and gpu["loss.ada_target"] == 0  # StyleGAN2-ADA's 10 kimg per 32 images


def _zip(tmp_path, resolution=16, n=24):
    src = tmp_path / "src"
    for c in range(2):
        (src / f"class{c}").mkdir(parents=True)
        for i in range(n // 2):
            Image.new("RGB", (resolution, resolution), (40 * i % 255, 100 * c, 30)).save(src / f"class{c}" / f"{i}.png")
    return prepare_dataset(str(src), str(tmp_path / "data.zip"), resolution, workers=0, progress=False).dest


def test_a_zip_trains_at_its_own_resolution_with_the_recipe_printed_and_stored(tmp_path, capsys):
    path = _zip(tmp_path)
    overrides = ["data=zip", f"data.path={path}", "train.kimg=0.032", "train.log_with=none", "train.grid_kimg=1"]
    cfg = compose("train", overrides)
    assert cfg.data.resolution is None and cfg.data.num_workers is None  # the zip's own; the machine's
    cfg.run_dir = str(tmp_path / "run")
    trainer = fresh_trainer(cfg)
    assert cfg.data.resolution == 16 and trainer.ema.module.resolution == 16 and cfg.data.num_workers >= 0
    assert cfg.loss.class_weight == 1.0 and cfg.loss.ada_target == 0.6 and cfg.model.generator.channels == [64, 64]
    trainer.train()
    log = (tmp_path / "run" / "train.log").read_text()
    assert "recipe=auto for 16 px, 24 images, 2 classes, 1 process(es) on cpu:" in log and "loss.ada_target=0.6" in log


def test_a_folder_needs_a_resolution(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 40)).save(tmp_path / "a.png")  # a folder of images (not /tmp: all of it was listed)
    cfg = compose("train", ["data=folder", f"data.path={tmp_path}"])
    with pytest.raises(ValueError, match=r"data.resolution: required for data=folder"):
        fresh_trainer(cfg)

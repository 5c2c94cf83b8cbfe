"""Fault injection, subject: training data. What belongs here: what a dataset folder or zip can
hold that breaks training: symbolic-link loops, broken dataset.json labels, corrupt images in a
zip (counted in the log and metrics.jsonl), a flat folder with a thumbnails subfolder, an empty
folder, a zip replaced or rewritten while a run reads it. (Generator files given to sampling and
evaluation: test_faults_files.py.)"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from fault_utils import deadline
from PIL import Image
from train_utils import fresh_trainer, run_config, run_script

from maxvit_gan.config import DataConfig
from maxvit_gan.data import ImageFolderDataset, ZipDataset, build_dataset
from maxvit_gan.data.datasets import list_image_files
from maxvit_gan.data.prepare import prepare_dataset
from maxvit_gan.rundir import RunDir


def _png(path, seed, size=12):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def classes(tmp_path):
    root = tmp_path / "src"
    for c in ("cat", "dog"):
        for k in range(3):
            _png(root / c / f"{k}.png", hash((c, k)) % 1000)
    return root


# ----------------------------------------------------------------------------- symbolic links


def test_a_symlink_loop_is_visited_once(classes):
    os.symlink(".", classes / "loop")
    with deadline(30), pytest.warns(UserWarning, match=r"reached a second time through a symbolic link .*loop"):
        files = list_image_files(str(classes))
    assert files == [f"{c}/{k}.png" for c in ("cat", "dog") for k in range(3)]
    with deadline(30), pytest.warns(UserWarning, match="symbolic link"):
        ds = ImageFolderDataset(str(classes), resolution=8)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 6


def test_two_symlink_loops_do_not_hang(classes):
    os.symlink(".", classes / "loop1")
    os.symlink("..", classes / "cat" / "up")
    with deadline(30), pytest.warns(UserWarning, match="symbolic link"):
        assert len(list_image_files(str(classes))) == 6


def test_prepare_dataset_with_a_symlink_loop_writes_each_image_once(classes, tmp_path):
    os.symlink(".", classes / "loop")
    os.symlink(".", classes / "loop2")
    with deadline(60), pytest.warns(UserWarning, match="symbolic link"):
        result = prepare_dataset(str(classes), str(tmp_path / "out.zip"), 8, workers=0, progress=False)
    assert result.num_images == 6 and result.num_classes == 2


def test_a_second_link_to_a_folder_is_not_a_second_copy(classes, tmp_path):
    os.symlink(classes / "cat", classes / "kitten")  # the same folder under two names
    with pytest.warns(UserWarning, match="kitten"):
        assert len(list_image_files(str(classes))) == 6


# ----------------------------------------------------------------------------- dataset.json


def _zip(path, n=4, meta=None, raw_json=None, corrupt=()):
    names = [f"00000/img{k:08d}.png" for k in range(n)]
    with zipfile.ZipFile(path, "w") as zf:
        for k, name in enumerate(names):
            if k in corrupt:
                zf.writestr(name, b"\x89PNG not really")
                continue
            buf = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), (30 * k) % 256, dtype=np.uint8)).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
        if raw_json is not None:
            zf.writestr("dataset.json", raw_json)
        elif meta is not None:
            zf.writestr("dataset.json", json.dumps(meta(names) if callable(meta) else meta))
    return path


@pytest.mark.parametrize(
    "raw,message",
    [
        ("{not json", r"dataset.json is not valid JSON"),
        ("[1, 2]", r"dataset.json must hold a JSON object, not a list"),
        ('{"labels": 5}', r"'labels' must be null or a list of \[file name, class\] pairs, not a int"),
        ('{"labels": [3, 4]}', r"'labels' entry 0 is 3, not a \[file name, class\] pair"),
    ],
)
def test_malformed_dataset_json_is_one_clear_line(tmp_path, raw, message):
    path = _zip(tmp_path / "d.zip", raw_json=raw)
    with pytest.raises(ValueError, match=message) as err:
        build_dataset(DataConfig(name="zip", path=str(path), resolution=8))
    assert type(err.value) is ValueError and "\n" not in str(err.value) and str(err.value).startswith("data.path: ")


@pytest.mark.parametrize(
    "labels,message",
    [
        ([0, 1, 2000000000, 1], r"the largest is 2000000000: 1999999998 of the 2000000001 classes would have no image"),
        ([0, 999, 0, 999], r"the largest is 999: 998 of the 1000 classes"),
        ([0, 1, 1.5, 0], r"is 1.5; only integer class labels"),
        ([0, 1, True, 0], r"is True; only integer class labels"),
        ([0, 1, "2", 0], r"is 2; only integer class labels"),
        ([0, -1, 0, 0], r"is -1, out of range: classes are >= 0"),
    ],
)
def test_bad_labels_are_refused_before_any_allocation(tmp_path, labels, message):
    path = _zip(tmp_path / "d.zip", meta=lambda names: {"labels": [[n, c] for n, c in zip(names, labels)]})
    with pytest.raises(ValueError, match=message) as err:
        ZipDataset(str(path), resolution=8)
    assert "\n" not in str(err.value)


def test_labels_beyond_the_class_names_are_refused(tmp_path):
    meta = lambda names: {"labels": [[n, c] for n, c in zip(names, [0, 1, 2, 1])], "class_names": ["a", "b"]}  # noqa: E731
    with pytest.raises(ValueError, match=r"is 2, out of range: classes are 0..1 \(dataset.json lists 2 class_names\)"):
        ZipDataset(str(_zip(tmp_path / "d.zip", meta=meta)), resolution=8)


def test_a_few_empty_classes_are_a_warning(tmp_path):
    meta = lambda names: {"labels": [[n, c] for n, c in zip(names, [0, 1, 3, 3])]}  # noqa: E731
    with pytest.warns(UserWarning, match=r"classes \[2\] have no image"):
        ds = ZipDataset(str(_zip(tmp_path / "d.zip", meta=meta)), resolution=8)
    assert ds.num_classes == 4


# ----------------------------------------------------------------------------- corrupt images, counted


def test_corrupt_images_in_a_zip_are_counted_in_the_log_and_metrics(tmp_path, capsys):
    path = _zip(tmp_path / "d.zip", n=24, corrupt=(3, 7, 11), meta={"labels": None})
    cfg = run_config(tmp_path / "run", "data=zip", f"data.path={path}", "data.resolution=16", "data.num_workers=2",
                     "data.conditional=false", "train.kimg=0.048", "train.tick_kimg=0.024", "loss.class_weight=0")  # fmt: skip
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        fresh_trainer(cfg).train()  # 6 steps of 8 = two epochs of the 21 readable images
    records = RunDir(tmp_path / "run").read_metrics()
    assert records[-1]["skipped_images"] == 3  # found by the DataLoader workers, counted here
    assert "skipped_images 3" in capsys.readouterr().out


# ----------------------------------------------------------------------------- folder layouts


def test_a_flat_folder_with_a_thumbnails_subfolder_is_an_error_that_says_what_to_do(tmp_path):
    root = tmp_path / "photos"
    for k in range(20):
        _png(root / f"{k:02d}.png", k)
    for k in range(8):
        _png(root / "thumbs" / f"{k}.png", 100 + k, size=4)
    with pytest.raises(ValueError, match=r"mixes 20 image\(s\) at its top level with 8 in 1 subfolder\(s\) \(thumbs/\)"
                       r".*data.conditional=false .* all 28 images") as err:  # fmt: skip
        build_dataset(DataConfig(name="folder", path=str(root), resolution=8))
    assert "\n" not in str(err.value)
    ds = build_dataset(DataConfig(name="folder", path=str(root), resolution=8, conditional=False))
    assert len(ds) == 28 and ds.num_classes == 0


def test_a_stray_image_next_to_class_folders_is_a_warning_naming_what_is_trained(classes):
    _png(classes / "stray.png", 7)
    with pytest.warns(UserWarning, match=r"training on the 6 images of 2 class folders; the 1 image\(s\) at the top level"):
        ds = ImageFolderDataset(str(classes), resolution=8)
    assert len(ds) == 6 and ds.num_classes == 2


def test_empty_folder_is_an_error_before_training(tmp_path, capsys):
    """scripts/train_gan.py (in this process) on an empty image folder: an error naming it, no checkpoint."""
    (tmp_path / "empty").mkdir()
    code, stdout, stderr = run_script(capsys, "train_gan.py", f"hydra.run.dir={tmp_path / 'r'}", "experiment=smoke",
                                      "data=folder", f"data.path={tmp_path / 'empty'}")  # fmt: skip
    assert code != 0
    assert str(tmp_path / "empty") in stderr + stdout
    assert not (tmp_path / "r" / "checkpoints").exists()


# ----------------------------------------------------------------------------- a zip replaced while in use


def _replace(path, n):
    """As `prepare ... overwrite=true` does: another zip written next to it, renamed over it."""
    os.replace(_zip(path.with_name("new.zip"), n=n, meta={"labels": None}), path)


def test_a_zip_replaced_while_training_stops_the_run_in_one_line(tmp_path, monkeypatch):
    from maxvit_gan.training.trainer import Trainer

    path = _zip(tmp_path / "d.zip", n=16, meta={"labels": None})
    real_step = Trainer.train_step

    def step(self, images, labels):  # during step 2, the last of the first epoch (16 images, batch 8)
        if self.state["step"] == 1:
            _replace(path, n=20)
        return real_step(self, images, labels)

    monkeypatch.setattr(Trainer, "train_step", step)
    cfg = run_config(tmp_path / "run", "data=zip", f"data.path={path}", "data.resolution=16", "data.conditional=false",
                     "loss.class_weight=0", "train.kimg=0.048", "train.checkpoint_kimg=1")  # fmt: skip
    with pytest.raises(RuntimeError) as info:  # stopping.TrainingError: exit 3 from the command
        fresh_trainer(cfg).train()
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        f"training stopped at step 2 by DatasetChangedError: data.path: {path} was replaced or rewritten since training started"
    )
    assert "reading on would mix its images with the old labels" in message and "the state at step 2 was saved" in message


def test_a_replaced_zip_is_refused_by_every_new_reader(tmp_path):
    """A DataLoader worker (a copy of the dataset, as spawn makes it) that opens the zip after it
    was replaced refuses it instead of reading the new images. (data.in_memory=true never reads it again.)"""
    import pickle

    path = _zip(tmp_path / "d.zip", n=16, meta={"labels": None})
    ds = ZipDataset(str(path), use_labels=False)
    in_memory = ZipDataset(str(path), use_labels=False, in_memory=True)
    _replace(path, n=20)
    worker = pickle.loads(pickle.dumps(ds))
    with pytest.raises(RuntimeError, match=rf"data.path: {path} was replaced or rewritten since training started"):
        worker[3]
    in_memory.check_unchanged()
    assert int(in_memory[3][0][0, 0, 0]) == 90  # image 3 of the first zip (30 * 3)


def test_a_zip_rewritten_in_place_under_an_open_reader_is_an_error_not_a_flood_of_skipped_images(tmp_path):
    """`cp new.zip d.zip` rewrites the file an open reader holds: its reads fail (or decode other
    pixels); that is the file changing, not unreadable images to skip."""

    def noise_zip(seed):  # 16 images of noise, 50 KB: more than a read buffer holds
        buf, rng = io.BytesIO(), np.random.default_rng(seed)
        with zipfile.ZipFile(buf, "w") as zf:
            for k in range(16):
                png = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(png, format="PNG")
                zf.writestr(f"00000/img{k:08d}.png", png.getvalue())
        return buf.getvalue()

    path = tmp_path / "d.zip"
    path.write_bytes(noise_zip(0))
    ds = ZipDataset(str(path), use_labels=False)
    ds[0]
    new = noise_zip(1)  # the same names, other pixels
    with open(path, "r+b") as f:  # same inode: the reader's handle sees the new bytes
        f.write(new)
        f.truncate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipping unreadable image"
        with pytest.raises(RuntimeError, match="was replaced or rewritten"):  # datasets.DatasetChangedError
            [ds[k] for k in range(16)]
    assert ds.num_skipped == 0

"""Datasets: shapes, image folder, prepared zip; common interface and error handling."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from maxvit_gan.config import DataConfig
from maxvit_gan.data import (
    ImageFolderDataset,
    ShapesDataset,
    ZipDataset,
    build_dataset,
    center_crop_arr,
    dataset_content_hash,
)
from maxvit_gan.data import datasets as datasets_mod
from maxvit_gan.data.synthetic import _SHAPE_COLOURS

# ----------------------------------------------------------------------------- helpers


def _noise_image(rng, w, h, mode="RGB"):
    """A smooth random image (low-frequency noise upsampled), so crops/resizes are non-trivial."""
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return img.convert(mode)


def _check_item(ds, i, resolution):
    img, label = ds[i]
    assert img.dtype == torch.uint8 and img.shape == (3, resolution, resolution)
    assert img.is_contiguous()
    assert label.dtype == torch.int64 and label.dim() == 0
    return img, label


@pytest.fixture
def class_folder(tmp_path):
    """root/{apple,banana}/ with JPEG + PNG images of varied sizes (apple sorts first)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "folder"
    sizes = {"apple": [(80, 60), (50, 90), (40, 40)], "banana": [(120, 70), (33, 47)]}
    for cls, dims in sizes.items():
        (root / cls).mkdir(parents=True)
        for k, (w, h) in enumerate(dims):
            ext = "png" if k % 2 else "jpg"
            _noise_image(rng, w, h).save(root / cls / f"img{k}.{ext}")
    (root / "banana" / "notes.txt").write_text("not an image")
    return root


def _write_zip(path, images, labels=None, extra_json=None):
    """A StyleGAN2-ADA-format zip written by hand (independent of prepare.py)."""
    names = [f"00000/img{k:08d}.png" for k in range(len(images))]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in zip(names, images):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
        meta = {"labels": None if labels is None else [[n, int(c)] for n, c in zip(names, labels)]}
        meta.update(extra_json or {})
        zf.writestr("dataset.json", json.dumps(meta))
    return names


# ----------------------------------------------------------------------------- shapes


def test_shapes_item_format_and_labels():
    ds = ShapesDataset(resolution=32, num_images=20, num_classes=4, seed=0)
    assert len(ds) == 20 and ds.resolution == 32 and ds.num_classes == 4
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (20,)
    for i in range(8):
        _, label = _check_item(ds, i, 32)
        assert int(label) == i % 4 == ds.labels[i]
    assert sorted(set(ds.labels.tolist())) == [0, 1, 2, 3]
    assert ds.class_names == ["circle", "square", "triangle", "cross"]


def test_shapes_deterministic_and_varied():
    a = ShapesDataset(resolution=32, num_images=50, seed=3)
    b = ShapesDataset(resolution=32, num_images=50, seed=3)
    c = ShapesDataset(resolution=32, num_images=50, seed=4)
    # Same (seed, index) -> same image, across instances and in any access order.
    assert torch.equal(a[7][0], b[7][0])
    _ = b[30]
    assert torch.equal(a[7][0], b[7][0])
    # Different indices (also of the same class) and different seeds differ.
    imgs = [a[i][0] for i in range(12)]
    for i in range(12):
        for j in range(i + 1, 12):
            assert not torch.equal(imgs[i], imgs[j])
    assert not torch.equal(a[7][0], c[7][0])
    assert a.content_hash == b.content_hash != c.content_hash


def test_shapes_unconditional_any_resolution():
    ds = ShapesDataset(resolution=48, num_images=10, num_classes=3, conditional=False)
    assert ds.num_classes == 0 and np.all(ds.labels == 0)
    img, label = _check_item(ds, 4, 48)
    assert int(label) == 0
    # supersampled rendering agrees with the analytic antialiasing up to edge pixels
    ss = ShapesDataset(resolution=48, num_images=10, num_classes=3, conditional=False, supersample=3)
    diff = (ss[4][0].int() - img.int()).abs()
    assert (diff > 40).float().mean() < 0.05
    with pytest.raises(ValueError, match="num_classes"):
        ShapesDataset(num_classes=7)


def test_shapes_are_large_bold_and_class_specific():
    """Learnability guard: the shape covers a large share of the image, and classes differ in
    how much of their bounding box they fill (circle/square are solid, ring/cross/star are not)."""
    ds = ShapesDataset(resolution=32, num_images=600, num_classes=6, seed=0)
    colours = _SHAPE_COLOURS  # (6, 3)
    coverage = {c: [] for c in range(6)}
    fill = {c: [] for c in range(6)}
    for i in range(0, 240):
        img = ds.render(i).astype(np.float32)
        d = np.abs(img[:, :, None, :] - colours[None, None]).max(-1).min(-1)  # distance to palette
        mask = d < 12
        ys, xs = np.nonzero(mask)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        coverage[i % 6].append(mask.mean())
        fill[i % 6].append(mask.sum() / box)
    mean_cov = {c: float(np.mean(v)) for c, v in coverage.items()}
    mean_fill = {c: float(np.mean(v)) for c, v in fill.items()}
    for c in range(6):
        assert 0.10 < mean_cov[c] < 0.6, (c, mean_cov)
    assert mean_fill[1] > 0.8  # square (small rotations) fills its box
    assert mean_fill[4] < 0.6 and mean_fill[3] < 0.75 and mean_fill[5] < 0.6  # ring, cross, star
    assert 0.45 < mean_fill[2] < 0.7  # triangle: about half


# ----------------------------------------------------------------------------- folder


def test_folder_dataset_labels_and_pixels(class_folder):
    ds = ImageFolderDataset(str(class_folder), resolution=32)
    assert len(ds) == 5 and ds.num_classes == 2 and ds.class_names == ["apple", "banana"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1] and ds.name == "folder"
    for i in range(5):
        img, label = _check_item(ds, i, 32)
        assert int(label) == ds.labels[i]
    # pixels are exactly center_crop_arr of the RGB source file
    ref = center_crop_arr(Image.open(class_folder / "banana" / "img0.jpg").convert("RGB"), 32)
    assert torch.equal(ds[3][0], torch.from_numpy(ref).permute(2, 0, 1))


def test_folder_unconditional_flat_and_use_labels(class_folder, tmp_path):
    ds = ImageFolderDataset(str(class_folder), resolution=16, use_labels=False)
    assert ds.num_classes == 0 and len(ds) == 5 and int(ds[3][1]) == 0
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        _noise_image(rng, 40 + k, 30).save(flat / f"{k}.png")
    ds = ImageFolderDataset(str(flat), resolution=16)
    assert ds.num_classes == 0 and len(ds) == 3 and np.all(ds.labels == 0)


def test_max_images_is_a_fixed_spread_subset(tmp_path):
    root = tmp_path / "many"
    rng = np.random.default_rng(0)
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for k in range(5):
            _noise_image(rng, 16, 16).save(root / f"c{c}" / f"{k}.png")
    a = ImageFolderDataset(str(root), resolution=8, max_images=8)
    b = ImageFolderDataset(str(root), resolution=8, max_images=8)
    assert len(a) == 8 and a._names == b._names
    assert a._names == sorted(a._names)  # listing order kept
    assert len(set(a.labels.tolist())) >= 3  # not just the first classes
    full = ImageFolderDataset(str(root), resolution=8)
    assert a.content_hash != full.content_hash


def test_corrupt_and_truncated_images_are_skipped_and_counted(class_folder):
    good = (class_folder / "apple" / "img0.jpg").read_bytes()
    (class_folder / "apple" / "zbroken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (class_folder / "banana" / "img1_cut.jpg").write_bytes(good[: len(good) // 3])  # truncated
    ds = ImageFolderDataset(str(class_folder), resolution=16)
    assert len(ds) == 7
    names = ds._names
    i_broken, i_cut = names.index("apple/zbroken.jpg"), names.index("banana/img1_cut.jpg")
    with pytest.warns(UserWarning, match="zbroken.jpg"):
        img, label = ds[i_broken]
    # the next readable image stands in, with its own label
    assert torch.equal(img, ds[i_broken + 1][0]) and int(label) == ds.labels[i_broken + 1]
    assert i_cut == len(ds) - 1
    with pytest.warns(UserWarning, match="img1_cut.jpg"):
        img, label = ds[i_cut]  # the last file: wraps around to the first
    assert torch.equal(img, ds[0][0]) and int(label) == 0
    assert ds.num_skipped == 2 and set(ds.skipped_files) == {"apple/zbroken.jpg", "banana/img1_cut.jpg"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known-bad files are not re-read nor re-warned
        ds[i_broken]
    assert ds.num_skipped == 2
    # a full pass never raises
    assert sum(1 for i in range(len(ds)) if ds[i][0].shape == (3, 16, 16)) == len(ds)
    # an unreadable first file is found (and skipped) already at construction
    (class_folder / "apple" / "a_first.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="a_first.jpg"):
        ds = ImageFolderDataset(str(class_folder), resolution=16)
    assert ds.num_skipped == 1 and int(ds[0][1]) == 0


def test_errors_missing_empty_unreadable(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolderDataset(str(missing), resolution=16)
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        ZipDataset(str(tmp_path / "nope.zip"))
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        ImageFolderDataset(str(empty), resolution=16)
    bad = tmp_path / "bad"
    bad.mkdir()
    for k in range(2):
        (bad / f"{k}.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 2 images"):
        ImageFolderDataset(str(bad), resolution=16)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    with pytest.raises(ValueError, match="no images"):
        ZipDataset(str(tmp_path / "empty.zip"))
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid zip"):
        ZipDataset(str(tmp_path / "fake.zip"))


# ----------------------------------------------------------------------------- zip


def test_zip_dataset_labels_resolution_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(6)]
    labels = [2, 0, 1, 2, 0, 1]
    path = tmp_path / "set.zip"
    _write_zip(path, images, labels)
    ds = ZipDataset(str(path))
    assert ds.resolution == 24 and len(ds) == 6 and ds.num_classes == 3 and ds.name == "set"
    assert ds.labels.tolist() == labels
    for i in range(6):
        img, label = _check_item(ds, i, 24)
        assert torch.equal(img, torch.from_numpy(images[i]).permute(2, 0, 1)) and int(label) == labels[i]
    mem = ZipDataset(str(path), in_memory=True)
    for i in range(6):
        assert torch.equal(mem[i][0], ds[i][0])
    x = mem[0][0]
    x.zero_()  # returned tensors never alias the shared array
    assert torch.equal(mem[0][0], ds[0][0])
    # another resolution: center_crop_arr of the stored image
    small = ZipDataset(str(path), resolution=12)
    ref = center_crop_arr(Image.fromarray(images[3]), 12)
    assert torch.equal(small[3][0], torch.from_numpy(ref).permute(2, 0, 1))
    nolab = ZipDataset(str(path), use_labels=False)
    assert nolab.num_classes == 0 and int(nolab[0][1]) == 0


def test_zip_unconditional_and_bad_member(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / "u.zip"
    names = _write_zip(path, images, labels=None)
    with zipfile.ZipFile(path, "a") as zf:  # a corrupt member sorted between good ones
        zf.writestr("00000/img00000001x.png", b"\x89PNG broken")
    ds = ZipDataset(str(path), resolution=16)
    assert ds.num_classes == 0 and len(ds) == 4 and names[1] in ds._names
    bad = ds._names.index("00000/img00000001x.png")
    with pytest.warns(UserWarning, match="img00000001x.png"):
        img, _ = ds[bad]
    assert torch.equal(img, torch.from_numpy(images[2]).permute(2, 0, 1)) and ds.num_skipped == 1


def test_zip_handle_is_per_process_and_not_pickled(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(8)]
    path = tmp_path / "w.zip"
    _write_zip(path, images, labels=list(range(8)))
    ds = ZipDataset(str(path))
    assert ds._zf is not None and ds._zf_pid == os.getpid()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zf is None and torch.equal(clone[5][0], ds[5][0])
    ds._zf_pid = -12345  # as seen from a forked child: the inherited handle must not be reused
    old = ds._zf
    ds[0]
    assert ds._zf is not old and ds._zf_pid == os.getpid()
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    got = torch.cat([b[0] for b in batches])
    assert torch.equal(got, torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in images]))
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(8))


def test_zip_in_memory_refuses_when_too_big(tmp_path, monkeypatch):
    images = [np.zeros((32, 32, 3), dtype=np.uint8)] * 4
    path = tmp_path / "m.zip"
    _write_zip(path, images)
    monkeypatch.setattr(datasets_mod, "_available_memory_bytes", lambda: 1000)
    with pytest.raises(MemoryError, match=r"GB"):
        ZipDataset(str(path), in_memory=True)


def test_content_hash(tmp_path, class_folder):
    images = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (10, 20)]
    _write_zip(tmp_path / "h.zip", images, extra_json={"content_hash": "abc123"})
    assert dataset_content_hash(str(tmp_path / "h.zip")) == "abc123"
    _write_zip(tmp_path / "n1.zip", images)
    _write_zip(tmp_path / "n2.zip", images[::-1])
    h1, h2 = dataset_content_hash(str(tmp_path / "n1.zip")), dataset_content_hash(str(tmp_path / "n2.zip"))
    assert len(h1) == 64 and h1 != h2
    before = dataset_content_hash(str(class_folder))
    assert ImageFolderDataset(str(class_folder), 16).content_hash == before
    target = class_folder / "apple" / "img0.jpg"
    target.write_bytes(target.read_bytes() + b"\0")  # size changes
    assert dataset_content_hash(str(class_folder)) != before


def test_content_hash_of_dataset_objects(tmp_path):
    """One function for paths and datasets: a dataset's own `content_hash`, else its decoded images."""
    shapes = ShapesDataset(resolution=16, num_images=6, num_classes=3)
    assert dataset_content_hash(shapes) == shapes.content_hash
    assert dataset_content_hash(shapes, max_items=4) == f"{shapes.content_hash}|n=4"
    _write_zip(tmp_path / "p.zip", [np.full((8, 8, 3), 5, dtype=np.uint8)])
    assert dataset_content_hash(tmp_path / "p.zip") == dataset_content_hash(str(tmp_path / "p.zip"))
    plain = [(torch.zeros(3, 4, 4, dtype=torch.uint8), 0), (torch.ones(3, 4, 4, dtype=torch.uint8), 1)]
    h = dataset_content_hash(plain)
    assert h.startswith("sha256:") and h == dataset_content_hash(list(plain))
    assert dataset_content_hash(plain, max_items=1) != h
    plain[1] = (torch.full((3, 4, 4), 2, dtype=torch.uint8), 1)  # one image changes: the hash changes
    assert dataset_content_hash(plain) != h


# ----------------------------------------------------------------------------- build_dataset


def test_build_dataset_kinds_and_errors(tmp_path, class_folder):
    ds = build_dataset(DataConfig(name="shapes", resolution=16, shapes_num_images=10, shapes_num_classes=3))
    assert isinstance(ds, ShapesDataset) and len(ds) == 10 and ds.num_classes == 3
    ds = build_dataset(DataConfig(name="shapes", conditional=False, max_images=5))
    assert len(ds) == 5 and ds.num_classes == 0
    ds = build_dataset(DataConfig(name="folder", path=str(class_folder), resolution=16))
    assert isinstance(ds, ImageFolderDataset) and ds.num_classes == 2
    zpath = tmp_path / "b.zip"
    _write_zip(zpath, [np.zeros((16, 16, 3), np.uint8)] * 2, labels=[0, 1])
    ds = build_dataset(DataConfig(name="zip", path=str(zpath), resolution=16, conditional=False))
    assert isinstance(ds, ZipDataset) and ds.num_classes == 0

    with pytest.raises(ValueError, match="data.name"):
        build_dataset(DataConfig(name="imagenet"))
    with pytest.raises(ValueError, match="data.path: required"):
        build_dataset(DataConfig(name="folder"))
    with pytest.raises(FileNotFoundError, match=r"data.path: .*missing.* does not exist"):
        build_dataset(DataConfig(name="zip", path=str(tmp_path / "missing.zip")))
    with pytest.raises(ValueError, match="data.path: .*not a directory"):
        build_dataset(DataConfig(name="folder", path=str(zpath)))
    (tmp_path / "void").mkdir()
    with pytest.raises(ValueError, match="data.path: .*no images"):
        build_dataset(DataConfig(name="folder", path=str(tmp_path / "void")))
    with pytest.raises(ValueError, match="data.resolution"):
        build_dataset(DataConfig(resolution=0))

"""prepare_dataset: image folder -> StyleGAN2-ADA zip (ADM crop, RGB, labels, atomic write)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from train_utils import ROOT, run_script, subprocess_env

from maxvit_gan.data import ZipDataset, dataset_content_hash
from maxvit_gan.data import prepare as prepare_mod
from maxvit_gan.data.prepare import format_report, prepare_dataset


def _smooth(rng, w, h):
    small = rng.integers(0, 256, (max(2, h // 10), max(2, w // 10), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


@pytest.fixture
def source(tmp_path):
    """A class-folder tree: JPEGs of varied sizes, grayscale, CMYK, RGBA PNG, a corrupt file.

    Sorted readable order (label): bird/a_wide.jpg(0) bird/b_gray.jpg(0) bird/c_small.jpg(0)
    cat/a_cmyk.jpg(1) cat/b_alpha.png(1) cat/d_tall.jpeg(1) ; cat/c_corrupt.jpg is unreadable.
    """
    rng = np.random.default_rng(0)
    root = tmp_path / "src"
    (root / "bird").mkdir(parents=True)
    (root / "cat").mkdir()
    _smooth(rng, 300, 200).save(root / "bird" / "a_wide.jpg", quality=95)
    _smooth(rng, 90, 120).convert("L").save(root / "bird" / "b_gray.jpg")
    _smooth(rng, 20, 24).save(root / "bird" / "c_small.jpg")  # smaller than R: upsampled
    _smooth(rng, 100, 100).convert("CMYK").save(root / "cat" / "a_cmyk.jpg")
    rgba = np.zeros((80, 80, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[20:60, 20:60, 3] = 255  # opaque centre, transparent border
    Image.fromarray(rgba, "RGBA").save(root / "cat" / "b_alpha.png")
    (root / "cat" / "c_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    _smooth(rng, 64, 150).save(root / "cat" / "d_tall.jpeg")
    return root


def _read_zip(path):
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("dataset.json"))
        images = {
            n: np.array(Image.open(zf.open(n)).convert("RGB")) for n in zf.namelist() if n.endswith(".png")
        }
        infos = {i.filename: i for i in zf.infolist()}
    return meta, images, infos


def test_prepare_writes_every_readable_image(source, tmp_path):
    dest = tmp_path / "out" / "set.zip"
    res = prepare_dataset(str(source), str(dest), resolution=32, workers=0, progress=False)
    assert dest.is_file() and res.num_images == 6 and res.num_classes == 2
    assert res.num_skipped == 1 and res.skipped[0][0] == "cat/c_corrupt.jpg"
    meta, images, infos = _read_zip(dest)
    names = [f"00000/img{k:08d}.png" for k in range(6)]
    assert sorted(images) == names
    assert all(infos[n].compress_type == zipfile.ZIP_STORED for n in infos)
    assert meta["labels"] == [[n, c] for n, c in zip(names, [0, 0, 0, 1, 1, 1])]
    assert meta["class_names"] == ["bird", "cat"] and meta["skipped"] == ["cat/c_corrupt.jpg"]
    assert meta["content_hash"] == res.content_hash == dataset_content_hash(str(dest))
    for n in names:
        assert images[n].shape == (32, 32, 3) and images[n].dtype == np.uint8
    gray = images[names[1]].astype(int)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    alpha = images[names[4]]  # transparent border composited on white, opaque centre red
    assert np.all(alpha[0, 0] == 255) and np.all(alpha[16, 16] == [200, 0, 0])
    cmyk = images[names[3]].astype(int)
    ref = np.asarray(Image.open(source / "cat" / "a_cmyk.jpg").convert("RGB").resize((32, 32), Image.BOX))
    assert np.abs(cmyk - ref).mean() < 12  # CMYK converted to RGB, not misread
    # the ZipDataset reads it back with the same labels
    ds = ZipDataset(str(dest))
    assert (
        ds.resolution == 32 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1] and ds.class_names == ["bird", "cat"]
    )
    assert torch.equal(ds[4][0], torch.from_numpy(alpha).permute(2, 0, 1))
    assert "skipped 1 unreadable" in format_report(res) and "c_corrupt.jpg" in format_report(res)


def test_crop_matches_hand_computed_adm_reference(source, tmp_path):
    """300x200 at R=32: box-halve to 150x100, again to 75x50 (50 < 64 stops), bicubic to 48x32,
    then the centre 32 columns (offset (48-32)//2 = 8)."""
    dest = tmp_path / "r.zip"
    prepare_dataset(str(source), str(dest), resolution=32, workers=0, progress=False)
    _, images, _ = _read_zip(dest)
    img = Image.open(source / "bird" / "a_wide.jpg").convert("RGB")
    img = img.resize((150, 100), Image.BOX).resize((75, 50), Image.BOX).resize((48, 32), Image.BICUBIC)
    ref = np.asarray(img)[:, 8:40]
    assert np.array_equal(images["00000/img00000000.png"], ref)
    # 64x150: short side 64 >= 2*32 -> box-halve to 32x75; scale 1 (bicubic to 32x75); rows 21:53
    img = Image.open(source / "cat" / "d_tall.jpeg").convert("RGB")
    ref = np.asarray(img.resize((32, 75), Image.BOX).resize((32, 75), Image.BICUBIC))[21:53]
    assert np.array_equal(images["00000/img00000005.png"], ref)


def test_deterministic_across_workers_and_max_images(source, tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    ra = prepare_dataset(str(source), str(a), resolution=16, workers=0, progress=False)
    rb = prepare_dataset(str(source), str(b), resolution=16, workers=2, progress=False)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert ra.content_hash == rb.content_hash
    c = tmp_path / "c.zip"
    rc = prepare_dataset(str(source), str(c), resolution=16, max_images=3, workers=0, progress=False)
    meta, images, _ = _read_zip(c)
    assert len(images) == rc.num_images <= 3 and rc.num_images + rc.num_skipped == 3
    assert rc.content_hash != ra.content_hash
    # a different resolution is different content
    d = tmp_path / "d.zip"
    assert prepare_dataset(str(source), str(d), 24, workers=0, progress=False).content_hash != ra.content_hash
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare_dataset(str(source), str(d), 24, workers=0, progress=False)


def test_interrupted_preparation_leaves_nothing(source, tmp_path, monkeypatch):
    real = prepare_mod._process_image
    calls = []

    def flaky(task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C halfway
        return real(task)

    monkeypatch.setattr(prepare_mod, "_process_image", flaky)
    outdir = tmp_path / "o"
    dest = outdir / "x.zip"
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(str(source), str(dest), resolution=16, workers=0, progress=False)
    assert len(calls) == 3
    assert not dest.exists() and os.listdir(outdir) == []  # no dest, no leftover .tmp file


def test_prepare_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="source: .*nowhere"):
        prepare_dataset(str(tmp_path / "nowhere"), str(tmp_path / "x.zip"), 16, progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 images"):
        prepare_dataset(str(bad), str(tmp_path / "y.zip"), 16, workers=0, progress=False)
    assert not (tmp_path / "y.zip").exists()


def test_script_end_to_end(source, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "cli" / "set64.zip"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prepare_dataset.py"), f"source={source}", f"dest={dest}", "resolution=64",
         "workers=2"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped 1 unreadable" in proc.stdout and "cat/c_corrupt.jpg" in proc.stdout
    assert "wrote 6 images (64x64, 2 classes" in proc.stdout
    assert ZipDataset(str(dest)).resolution == 64
    assert not (tmp_path / "outputs").exists()  # Hydra writes no run directory for this tool
    # a missing mandatory key is a clear error (the script in this process)
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_script(capsys, "prepare_dataset.py", f"source={source}", "resolution=64")
    assert code != 0 and "dest" in stderr + stdout

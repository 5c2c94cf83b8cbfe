"""benchmarks/real_datasets.py and benchmarks/glyph_judge.py on tiny inputs the tests make (fonts
that ship with matplotlib, stamp and icon trees of PNGs written here): never the Debian packages."""

import importlib
import json
import zipfile
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from train_utils import ROOT

MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf"]  # fmt: skip


@pytest.fixture()
def mods(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("real_datasets"), importlib.import_module("glyph_judge")


def zip_meta(path):
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("dataset.json"))
        first = Image.open(zf.open(sorted(n for n in zf.namelist() if n.endswith(".png"))[0]))
        return meta, first.size


@pytest.fixture()
def font_dir(tmp_path):
    d = tmp_path / "fonts"
    d.mkdir()
    for name in [*FONTS, "LastResortHE-Regular.ttf", "STIXSizOneSymReg.ttf"]:  # A-Z as one box; no A-Z
        (d / name).symlink_to(MPL_FONTS / name)
    (d / "DejaVuSans_copy.ttf").symlink_to(MPL_FONTS / "DejaVuSans.ttf")  # a pixel-identical duplicate
    return d


# --------------------------------------------------------------------------- glyphs


def test_render_glyph_fits_and_centres_the_ink(mods):
    rd, _ = mods
    img = np.asarray(rd.render_glyph(MPL_FONTS / "DejaVuSans.ttf", "H", size=32, render=128, fill=0.75))
    assert img.shape == (32, 32, 3) and (img[..., 0] == img[..., 2]).all()
    ink = np.argwhere(img[..., 0] < 128)
    (top, left), (bottom, right) = ink.min(0), ink.max(0)
    assert bottom - top + 1 == pytest.approx(0.75 * 32, abs=1.5)  # H is taller than wide: its height fits
    assert abs((top + bottom) / 2 - 15.5) <= 0.5 and abs((left + right) / 2 - 15.5) <= 0.5
    assert (img[0] == 255).all() and (img[:, 0] == 255).all()


def test_glyphs_build_split_and_zip(mods, font_dir, tmp_path):
    rd, _ = mods
    out = tmp_path / "real" / "glyphs"
    m = rd.build_glyphs(sorted(font_dir.iterdir()), out, seed=3, log=lambda s: None)
    assert sorted(sum(m["fonts"].values(), [])) == sorted(FONTS)  # every font once, in one part
    dropped = " ".join(m["dropped"])
    assert "LastResortHE" in dropped and "DejaVuSans_copy" in dropped and "STIX" not in dropped
    assert all(m["fonts"][s] for s in rd.SPLITS)
    for split, fonts in m["fonts"].items():
        assert sorted(p.name for p in (out / split).iterdir()) == list(rd.LETTERS)
        assert sorted(p.name for p in (out / split / "Q").iterdir()) == sorted(Path(f).stem + ".png" for f in fonts)
    saved = json.loads((out / "split.json").read_text())
    assert saved["fonts"] == m["fonts"] and saved["classes"] == list(rd.LETTERS)
    # deterministic: the same seed gives the same split and the same pixels, another seed may not
    again = rd.build_glyphs(sorted(font_dir.iterdir()), tmp_path / "again", seed=3, force=True, log=lambda s: None)
    assert again["fonts"] == m["fonts"]
    for p in (out / "gan_train" / "A").iterdir():
        assert p.read_bytes() == (tmp_path / "again" / "gan_train" / "A" / p.name).read_bytes()
    logs = []
    rd.build_glyphs(sorted(font_dir.iterdir()), out, seed=3, log=logs.append)
    assert logs and "reusing" in logs[0]
    z = tmp_path / "real" / "g.zip"
    rd.make_zip(out / "gan_train", z, 32, log=lambda s: None)
    meta, size = zip_meta(z)
    assert size == (32, 32) and meta["resolution"] == 32 and meta["class_names"] == list(rd.LETTERS)
    labels = [lab for _, lab in meta["labels"]]
    assert labels == sorted(labels) and np.bincount(labels).tolist() == [len(m["fonts"]["gan_train"])] * 26


def test_split_keeps_near_identical_fonts_together(mods):
    rd, _ = mods
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (5, 26, 8, 8)).astype(np.uint8)
    renders = np.concatenate([base, base[:2] ^ 1])  # fonts 5, 6: near-copies of fonts 0, 1
    fonts = [Path(f"f{i}.ttf") for i in range(7)]
    assert rd.font_units(fonts, renders, near=0.06) == [[0, 5], [1, 6], [2], [3], [4]]
    parts = rd.split_fonts(fonts, renders, seed=1)
    assert parts == rd.split_fonts(fonts, renders, seed=1)
    where = {f: s for s, fs in parts.items() for f in fs}
    assert sorted(where) == sorted(f.name for f in fonts) and all(parts.values())
    assert where["f0.ttf"] == where["f5.ttf"] and where["f1.ttf"] == where["f6.ttf"]
    with pytest.raises(ValueError, match="distinct design"):
        rd.split_fonts(fonts[:2], renders[:2], seed=0)


# --------------------------------------------------------------------------- stamps and icons


def rgba(w, h, box, color=(200, 0, 0, 255)):
    """A transparent w x h RGBA image with ``box`` (l, t, r, b exclusive) filled with ``color``."""
    a = np.zeros((h, w, 4), np.uint8)
    a[..., :3] = (0, 255, 0)  # colour under alpha 0: must not show
    a[box[1] : box[3], box[0] : box[2]] = color
    return Image.fromarray(a, "RGBA")


def test_square_on_white_pads_and_never_crops(mods):
    rd, _ = mods
    sq = np.asarray(rd.square_on_white(rgba(50, 20, (5, 2, 45, 18)), fill=0.8, trim=True))
    assert sq.shape == (50, 50, 3)  # content 40 x 16 -> side 40 / 0.8
    red = (sq == (200, 0, 0)).all(-1)
    assert red.sum() == 40 * 16  # all of it, unscaled
    rows, cols = np.where(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (17, 32, 5, 44)
    assert (sq[~red] == 255).all()  # white everywhere else (no green from transparent pixels)
    tall = np.asarray(rd.square_on_white(rgba(10, 30, (0, 0, 10, 30))))  # no trim, fill 1: pad only
    assert tall.shape == (30, 30, 3) and (tall[0, 0] == 255).all() and (tall[:, 10:20] == (200, 0, 0)).all()


def test_stamps_classes_dedupe_and_zips(mods, tmp_path):
    rd, _ = mods
    src = tmp_path / "stamps"
    for k, (cat, n) in enumerate((("animals", 3), ("food", 2), ("tiny", 1))):
        for i in range(n):
            d = src / cat / ("sub" if i == 2 else "")
            d.mkdir(parents=True, exist_ok=True)
            rgba(40 + 10 * i, 24, (3, 2, 30 + 10 * i, 20), (50 * i, 80 + 40 * k, 160, 255)).save(d / f"{cat}{i}.png")
    rgba(40, 24, (3, 2, 30, 20), (0, 80, 160, 255)).save(src / "animals" / "animals0_mirror.png")
    rgba(40, 24, (3, 2, 30, 20), (0, 80, 160, 255)).save(src / "food" / "same_as_animals0.png")  # pixel copy
    rgba(40, 24, (3, 2, 30, 20), (0, 0, 0, 255)).save(src / "food" / "food0x.png")
    (src / "food" / "food0x.svg").write_text("<svg/>")  # the PNG of the same name wins: no rsvg needed
    (src / "loose.png").write_bytes((src / "food" / "food0.png").read_bytes())  # no category: ignored
    out = tmp_path / "real" / "stamps"
    m = rd.build_stamps(src, out, min_per_class=2, fill=0.9, log=lambda s: None)
    assert m["counts"] == {"animals": 3, "food": 3} and m["dropped_classes"] == {"tiny": 1}
    assert len(m["duplicates"]) == 1 and "same_as_animals0" in m["duplicates"][0]
    assert "1 mirrored" in m["notes"][0] and not (out / "tiny").exists()
    assert sorted(p.name for p in (out / "animals").iterdir()) == ["animals0.png", "animals1.png", "sub_animals2.png"]
    for p in out.rglob("*.png"):
        a = np.asarray(Image.open(p))
        assert a.shape[0] == a.shape[1] and a.shape[2] == 3
        assert all((a[y, x] == 255).all() for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)])
    a = np.asarray(Image.open(out / "animals" / "animals1.png"))  # content 37 x 18 -> side ceil(37 / 0.9)
    assert a.shape[0] == 42 and ((a != 255).any(-1)).sum() == 37 * 18
    for r in (16, 32):
        z = tmp_path / "real" / f"stamps{r}.zip"
        rd.make_zip(out, z, r, log=lambda s: None)
        meta, size = zip_meta(z)
        assert size == (r, r) and meta["class_names"] == ["animals", "food"]
        assert [lab for _, lab in meta["labels"]] == [0, 0, 0, 1, 1, 1]


def test_icons_largest_size_dedupe_and_min_size(mods, tmp_path):
    rd, _ = mods
    src = tmp_path / "base"

    def icon(size, ctx, name, img):
        d = src / f"{size}x{size}" / ctx
        d.mkdir(parents=True, exist_ok=True)
        img.save(d / f"{name}.png")
        return d / f"{name}.png"

    icon(16, "apps", "editor", rgba(16, 16, (2, 2, 14, 14)))
    big = icon(48, "apps", "editor", rgba(48, 48, (4, 4, 44, 44)))
    (src / "48x48" / "apps" / "editor-alias.png").symlink_to(big)
    icon(48, "actions", "editor-copy", rgba(48, 48, (4, 4, 44, 44)))
    icon(32, "places", "folder", rgba(32, 32, (0, 8, 32, 24), (0, 0, 255, 128)))
    icon(22, "actions", "small-only", rgba(22, 22, (1, 1, 20, 20)))
    out = tmp_path / "real" / "icons"
    m = rd.build_icons(src, out, min_size=32, log=lambda s: None)
    assert sorted(p.name for p in out.iterdir()) == ["editor.png", "folder.png"]
    assert m["symlink_copies"] == 1 and m["pixel_duplicates"] == 1 and m["left_out_smaller_than_min_size"] == 1
    assert m["kept_by_size"] == {32: 1, 48: 1}
    folder = np.asarray(Image.open(out / "folder.png"))
    assert (folder[0, 0] == 255).all() and tuple(folder[16, 16]) == (127, 127, 255)  # half alpha over white
    z = tmp_path / "real" / "icons32.zip"
    rd.make_zip(out, z, 32, log=lambda s: None)
    meta, size = zip_meta(z)
    assert meta["labels"] is None and meta["num_images"] == 2 and size == (32, 32)


def test_missing_package_names_the_install_command(mods, tmp_path, monkeypatch, capsys):
    rd, _ = mods
    monkeypatch.setattr(rd, "DPKG_INFO", tmp_path)
    with pytest.raises(rd.MissingPackage, match=r"apt-get install -y fonts-noto-core"):
        rd.package_files("fonts-noto-core")
    with pytest.raises(SystemExit, match=r"^package tuxpaint-stamps-default is not installed: run `sudo apt-get"):
        rd.main(["--out", str(tmp_path / "o"), "build", "--only", "stamps"])


def test_cli_builds_from_folders_and_reuses(mods, font_dir, tmp_path, capsys):
    rd, _ = mods
    out = tmp_path / "o"
    rd.main(["--out", str(out), "build", "--only", "glyphs", "--fonts", str(font_dir), "--seed", "1"])
    first = capsys.readouterr().out
    assert "6 distinct Latin fonts" in first and "wrote" in first
    for s in rd.SPLITS:
        assert rd.zip_paths(out)[f"glyphs32_{s}"].is_file()
    rd.main(["--out", str(out), "build", "--only", "glyphs", "--fonts", str(font_dir), "--seed", "1"])
    assert capsys.readouterr().out.count("reusing") == 4  # the folders and the three zips


# --------------------------------------------------------------------------- the judge


class FixedJudge(torch.nn.Module):
    """Predicts the class written in pixel (0, 0, 0) of each uint8 image: a judge with known answers."""

    class_names = ["A", "B", "C"]

    def forward(self, x):
        pred = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()
        return torch.nn.functional.one_hot(pred, 3).float()


def test_score_matches_a_hand_computed_case(mods):
    _, gj = mods
    pred = torch.tensor([0, 0, 1, 2, 2, 1, 0])
    labels = torch.tensor([0, 1, 1, 2, 0, 0, 0])  # right: 0 yes, 1 no, 2 yes, 3 yes, 4 no, 5 no, 6 yes
    images = torch.full((7, 3, 32, 32), 200, dtype=torch.uint8)
    images[:, 0, 0, 0] = pred.to(torch.uint8)
    s = gj.score(FixedJudge(), images, labels)
    assert s["acc"] == pytest.approx(4 / 7) and s["n"] == 7
    assert s["per_class"] == pytest.approx({"A": 2 / 4, "B": 1 / 2, "C": 1.0})
    as_float = images.float() / 127.5 - 1  # the same images in [-1, 1]: the same answer
    assert gj.score(FixedJudge(), as_float, labels.tolist()) == s
    none_for_c = gj.score(FixedJudge(), images[:3], labels[:3])
    assert none_for_c["per_class"]["C"] is None and none_for_c["per_class"]["A"] == 1.0
    with pytest.raises(ValueError, match=r"images: expected a tensor \(N, 3, 32, 32\)"):
        gj.score(FixedJudge(), images[:, :, :16], labels)
    with pytest.raises(ValueError, match="labels: must lie in 0..2"):
        gj.score(FixedJudge(), images, labels + 1)


def test_judge_trains_deterministically_and_checks_class_order(mods, font_dir, tmp_path, monkeypatch):
    rd, gj = mods
    out = tmp_path / "real"
    rd.main(["--out", str(out), "build", "--only", "glyphs", "--fonts", str(font_dir)])
    zips = rd.zip_paths(out)
    x, y, names, content_hash = gj.load_zip(zips["glyphs32_judge_train"])
    assert names == list(rd.LETTERS) and x.dtype == torch.uint8 and x.shape[1:] == (3, 32, 32)
    a = gj.train(x, y, names, seed=0, steps=3, batch=8)
    b = gj.train(x, y, names, seed=0, steps=3, batch=8)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    s = gj.score(a, x, y)
    assert set(s["per_class"]) == set(rd.LETTERS) and 0 <= s["acc"] <= 1
    monkeypatch.setattr(gj, "STEPS", 3)
    judge = gj.load_or_train(zips["glyphs32_judge_train"], out=tmp_path / "cache", log=lambda s: None)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == [f"glyph_judge_{gj.cache_key(content_hash, 0)}.{ext}" for ext in ("json", "pt")]
    again = gj.load_or_train(zips["glyphs32_judge_train"], out=tmp_path / "cache", log=lambda s: None)
    assert all(torch.equal(judge.state_dict()[k], again.state_dict()[k]) for k in judge.state_dict())
    gj.check_classes(judge, zips["glyphs32_gan_train"])
    judge.class_names = list(reversed(rd.LETTERS))
    with pytest.raises(ValueError, match="differ from the judge's"):
        gj.check_classes(judge, zips["glyphs32_gan_train"])

"""Real-image datasets for the quality benchmark, built from three Debian packages.

    sudo apt-get install -y fonts-noto-core tuxpaint-stamps-default oxygen-icon-theme librsvg2-bin
    PYTHONPATH=. python benchmarks/real_datasets.py build                 # all three, then the zips
    PYTHONPATH=. python benchmarks/real_datasets.py build --only glyphs --force
    PYTHONPATH=. python benchmarks/real_datasets.py judge                 # train (or load) the glyph judge

Three datasets, each first a class-folder (or flat) image tree under benchmarks/out/real/, then
the project's prepared zip made by the product itself (``maxvit_gan.data.prepare.prepare_dataset``,
what ``maxvit-gan prepare`` runs):

- glyphs (conditional, 26 classes A-Z, 32 px): every Latin-capable font file of fonts-noto-core
  (A-Z all in its cmap), each letter rendered black on white at 128 px, the ink fitted to a fixed
  fraction of the box and centred by its bounding box, then box-filtered to 32 px (exact pixel
  coverage: no ringing). Fonts are split into ``gan_train`` / ``judge_train`` / ``judge_test``
  with a fixed seed; fonts whose renders are near-identical (Noto Sans vs Noto Sans Display at
  32 px) always land in the same part, so no near-copy crosses a split (``split.json``).
- stamps (conditional, Tux Paint category = class, 32 and 64 px): each stamp composited on
  white, trimmed to its content and padded to a square with a margin (never cropped). Mirrored
  copies (``*_mirror.png``) and pixel-identical duplicates are dropped; a PNG is preferred to an
  SVG of the same name; categories with fewer than ``--min-per-class`` stamps are dropped.
- icons (unconditional, 32 px): Oxygen icons, one per icon name at its largest raster size,
  symlinks and pixel-identical copies deduplicated, composited on white; icon names whose
  largest size is under ``--icon-min-size`` are left out (they would be upscaled, blurred).

Every stage is reused when its inputs and parameters are unchanged (a key in its manifest);
``--force`` rebuilds. Nothing here is committed: benchmarks/out/ is git-ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "real"
VERSION = 2  # bump when the output of a builder changes for the same input
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NEAR = 0.06  # fonts closer than this (mean |difference| of their 32-px A-Z) are one design
SPLITS = ("gan_train", "judge_train", "judge_test")
SHARES = {"gan_train": 0.6, "judge_train": 0.25, "judge_test": 0.15}  # of the fonts
PACKAGES = {"glyphs": "fonts-noto-core", "stamps": "tuxpaint-stamps-default", "icons": "oxygen-icon-theme"}
DPKG_INFO = Path("/var/lib/dpkg/info")


class MissingPackage(RuntimeError):
    pass


# --------------------------------------------------------------------------- sources


def package_files(package: str) -> list[Path]:
    """The files a Debian package installed (its dpkg list), existing regular files only."""
    for name in (f"{package}.list", f"{package}:all.list"):
        lst = DPKG_INFO / name
        if lst.is_file():
            paths = [Path(p) for p in lst.read_text().splitlines() if p.strip()]
            return sorted(p for p in paths if p.is_file())
    raise MissingPackage(f"package {package} is not installed: run `sudo apt-get install -y {package}`")


def package_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return out.stdout.strip() or None


def files_key(files, *params) -> str:
    """sha256 over the builder version, parameters and each file's path and size."""
    h = hashlib.sha256(f"v{VERSION}\0{json.dumps(params, default=str)}\n".encode())
    for f in files:
        h.update(f"{f}\0{os.path.getsize(f)}\n".encode())
    return h.hexdigest()


def _fresh(manifest: Path, key: str) -> dict | None:
    """The manifest when it exists and was built with ``key``, else None."""
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        if m.get("key") == key:
            return m
    return None


def _replace_dir(tmp: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


# --------------------------------------------------------------------------- images


def on_white(img: Image.Image) -> Image.Image:
    """RGB: the image's alpha (RGBA, LA, P with transparency) composited on white."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def square_on_white(img: Image.Image, fill: float = 1.0, trim: bool = False) -> Image.Image:
    """RGB square: the image composited on white and padded (never cropped) to a square.

    ``trim``: first cut away the fully transparent margins (alpha == 0 exactly: nothing visible
    is cut). ``fill``: the longer side of the content is this fraction of the square's side.
    """
    rgba = img.convert("RGBA")
    if trim:
        box = rgba.getchannel("A").getbbox()
        if box is None:
            raise ValueError("image is fully transparent")
        rgba = rgba.crop(box)
    w, h = rgba.size
    side = max(w, h, int(np.ceil(max(w, h) / fill)))
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(rgba, ((side - w) // 2, (side - h) // 2))
    return canvas.convert("RGB")


def pixel_hash(img: Image.Image) -> str:
    rgba = img.convert("RGBA")
    return hashlib.sha256(f"{rgba.size}".encode() + rgba.tobytes()).hexdigest()


# --------------------------------------------------------------------------- glyphs


def latin_fonts(paths) -> list[Path]:
    """The font files (.ttf/.otf) whose cmap maps every one of A-Z (fontTools)."""
    from fontTools.ttLib import TTFont

    keep = []
    for p in sorted(Path(p) for p in paths):
        if p.suffix.lower() not in (".ttf", ".otf"):
            continue
        font = TTFont(p, lazy=True)
        try:
            cmap = font.getBestCmap() or {}
        finally:
            font.close()
        if all(ord(c) in cmap for c in LETTERS):
            keep.append(p)
    return keep


def render_glyph(font: str | os.PathLike, char: str, size: int = 32, render: int = 128, fill: float = 0.8,
                 em: int = 256) -> Image.Image:  # fmt: skip
    """One character black on white, RGB ``size`` x ``size``.

    Drawn at ``em`` px, cut to its ink's bounding box, resized (Lanczos, downscaling) so that
    its longer side is ``fill`` x ``render`` px, centred by that box on a ``render``-px canvas,
    then reduced to ``size`` px with a box filter (exact area coverage: no ringing).
    """
    f = ImageFont.truetype(str(font), em)
    canvas = Image.new("L", (3 * em, 3 * em), 0)
    ImageDraw.Draw(canvas).text((em, em), char, font=f, fill=255)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"{font}: {char!r} renders no ink")
    ink = canvas.crop(box)
    scale = fill * render / max(ink.size)
    w, h = max(1, round(ink.width * scale)), max(1, round(ink.height * scale))
    ink = ink.resize((w, h), Image.Resampling.LANCZOS)
    big = Image.new("L", (render, render), 0)
    big.paste(ink, ((render - w) // 2, (render - h) // 2))
    small = big.resize((size, size), Image.Resampling.BOX)
    return Image.eval(small, lambda v: 255 - v).convert("RGB")


def render_font(font, size: int = 32) -> np.ndarray:
    """A-Z of one font: uint8 (26, size, size), grey levels (the R channel)."""
    return np.stack([np.asarray(render_glyph(font, c, size))[..., 0] for c in LETTERS])


def font_units(fonts: list[Path], renders: np.ndarray, near: float) -> list[list[int]]:
    """Groups of font indices whose renders are near-identical (mean |difference| of the 26
    32-px letters < ``near`` of full scale), linked transitively; sorted, deterministic."""
    n = len(fonts)
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    flat = renders.reshape(n, -1).astype(np.float32) / 255
    for i in range(n):
        for j in range(i + 1, n):
            if np.abs(flat[i] - flat[j]).mean() < near:
                parent[root(j)] = root(i)
    groups = defaultdict(list)
    for i in range(n):
        groups[root(i)].append(i)
    return sorted(groups.values())


def split_fonts(fonts: list[Path], renders: np.ndarray, seed: int = 0, shares: dict[str, float] | None = None,
                near: float = NEAR) -> dict[str, list[str]]:  # fmt: skip
    """Font file names per split (``SHARES`` of the fonts by default). Groups of near-identical
    fonts (``font_units``) are shuffled with ``seed`` and dealt one by one to the part furthest
    below its share (ties: the first in ``SPLITS``); a part still empty when only as many groups
    are left as empty parts gets the next one. Deterministic; disjoint; covers every font."""
    shares = SHARES if shares is None else shares
    units = font_units(fonts, renders, near)
    if len(units) < len(SPLITS):
        raise ValueError(
            f"glyphs: {len(fonts)} fonts in {len(units)} distinct design(s): need {len(SPLITS)} to split"
        )
    random.Random(seed).shuffle(units)
    parts: dict[str, list[str]] = {s: [] for s in SPLITS}
    for k, unit in enumerate(units):
        part = max(
            SPLITS, key=lambda p: shares[p] * len(fonts) - len(parts[p])
        )  # first of the largest deficits
        empty = [p for p in SPLITS if not parts[p] and p != part]
        if parts[part] and len(units) - k <= len(empty):
            part = empty[0]
        parts[part] += [fonts[i].name for i in unit]
    return {s: sorted(v) for s, v in parts.items()}


def build_glyphs(font_files, out: Path, seed: int = 0, force: bool = False, log=print) -> dict:
    """Class folders ``out/<split>/<letter>/<font>.png`` (32 px RGB) and ``out/split.json``.

    Fonts without A-Z are skipped; a font whose 26 renders equal an earlier font's pixel for
    pixel is a duplicate and dropped, and so is one that draws two letters alike (Last Resort
    maps A-Z to one box: the cmap alone cannot tell). Reused when the font files and parameters are unchanged.
    """
    fonts = latin_fonts(font_files)
    if not fonts:
        raise ValueError("glyphs: no font file with all of A-Z among the given files")
    key = files_key(fonts, "glyphs", seed, SHARES, NEAR)
    manifest = out / "split.json"
    if not force and (m := _fresh(manifest, key)):
        log(f"glyphs: reusing {out} ({sum(m['counts'].values())} images)")
        return m
    renders, kept, dropped, seen = [], [], [], {}
    for f in fonts:
        try:
            r = render_font(f)
        except (OSError, ValueError) as err:  # unreadable, or a letter without ink
            dropped.append(f"{f.name} ({err})")
            continue
        h = hashlib.sha256(r.tobytes()).hexdigest()
        if len({letter.tobytes() for letter in r}) < len(LETTERS):
            dropped.append(f"{f.name} (two letters render alike: a fallback font, not letters)")
            continue
        if h in seen:
            dropped.append(f"{f.name} (same pixels as {seen[h]})")
            continue
        seen[h] = f.name
        renders.append(r)
        kept.append(f)
    if not kept:
        raise ValueError(f"glyphs: none of the {len(fonts)} fonts with A-Z draws 26 distinct letters")
    renders = np.stack(renders)
    parts = split_fonts(kept, renders, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".glyphs-", dir=out.parent))
    index = {f.name: i for i, f in enumerate(kept)}
    for split, names in parts.items():
        for c, letter in enumerate(LETTERS):
            d = tmp / split / letter
            d.mkdir(parents=True, exist_ok=True)
            for name in names:
                Image.fromarray(renders[index[name], c]).convert("RGB").save(d / f"{Path(name).stem}.png")
    counts = {s: len(v) * len(LETTERS) for s, v in parts.items()}
    m = {"key": key, "seed": seed, "classes": list(LETTERS), "fonts": parts, "counts": counts,
         "dropped": dropped, "num_fonts": len(kept)}  # fmt: skip
    (tmp / "split.json").write_text(json.dumps(m, indent=1))
    _replace_dir(tmp, out)
    return m


# --------------------------------------------------------------------------- stamps


def find_stamps(root: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Tux Paint stamps under ``root`` by category (first folder level): one source file per
    stamp name (its folder + stem), a PNG preferred to an SVG of the same name; mirrored
    copies (``*_mirror.png``, Tux Paint's hand-mirrored variants) left out. Returns
    ``({category: [files]}, notes)``."""
    by_name: dict[Path, Path] = {}
    mirrors = 0
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in (".png", ".svg") or p.name.startswith(".") or not p.is_file():
            continue
        rel = p.relative_to(root)
        if len(rel.parts) < 2:
            continue  # a file directly in root has no category
        if p.stem.endswith("_mirror"):
            mirrors += 1
            continue
        stem = p.with_suffix("")
        if stem not in by_name or p.suffix.lower() == ".png":
            by_name[stem] = p
    cats: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(by_name.values()):
        cats[p.relative_to(root).parts[0]].append(p)
    notes = [f"{mirrors} mirrored copies (*_mirror.png) left out"] if mirrors else []
    return dict(cats), notes


def load_stamp(path: Path, svg_size: int = 256) -> Image.Image:
    """A stamp as a PIL image with alpha; an SVG is rasterised by rsvg-convert (librsvg2-bin)
    to fit ``svg_size`` x ``svg_size``."""
    if path.suffix.lower() != ".svg":
        with Image.open(path) as im:
            return im.convert("RGBA")
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise MissingPackage(
            "rsvg-convert is missing (SVG stamps): run `sudo apt-get install -y librsvg2-bin`"
        )
    png = subprocess.run(
        [exe, "-w", str(svg_size), "-h", str(svg_size), "--keep-aspect-ratio", "-f", "png", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    from io import BytesIO

    with Image.open(BytesIO(png)) as im:
        return im.convert("RGBA")


def build_stamps(root: Path, out: Path, min_per_class: int = 20, fill: float = 0.9, force: bool = False,
                 log=print) -> dict:  # fmt: skip
    """Class folders ``out/<category>/<name>.png``: each stamp composited on white, trimmed to
    its content and padded to a square in which it fills ``fill`` of the side (RGB, source
    resolution). Pixel-identical stamps are kept once; categories with fewer than
    ``min_per_class`` stamps left are dropped (too few for a class of a conditional GAN or
    a per-class score; merging unrelated ones would make a class with nothing in common)."""
    cats, notes = find_stamps(root)
    if not cats:
        raise ValueError(f"stamps: no PNG or SVG stamp in a category folder under {root}")
    files = [p for c in sorted(cats) for p in cats[c]]
    key = files_key(files, "stamps", min_per_class, fill)
    manifest = out / "manifest.json"
    if not force and (m := _fresh(manifest, key)):
        log(f"stamps: reusing {out} ({m['num_images']} images, {len(m['counts'])} classes)")
        return m
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".stamps-", dir=out.parent))
    seen: dict[str, str] = {}
    counts: Counter = Counter()
    duplicates, unreadable, svgs, small = [], [], 0, 0
    for cat in sorted(cats):
        for p in cats[cat]:
            rel = str(p.relative_to(root))
            try:
                img = load_stamp(p)
                sq = square_on_white(img, fill=fill, trim=True)
            except MissingPackage:
                raise
            except Exception as err:  # unreadable / fully transparent: reported, skipped
                unreadable.append(f"{rel}: {type(err).__name__}: {err}")
                continue
            h = pixel_hash(sq)
            if h in seen:
                duplicates.append(f"{rel} (same pixels as {seen[h]})")
                continue
            seen[h] = rel
            svgs += p.suffix.lower() == ".svg"
            small += sq.width < 64
            d = tmp / cat
            d.mkdir(exist_ok=True)
            name = "_".join(p.relative_to(root / cat).with_suffix("").parts)
            sq.save(d / f"{name}.png")
            counts[cat] += 1
    dropped = {c: n for c, n in sorted(counts.items()) if n < min_per_class}
    for c in dropped:
        shutil.rmtree(tmp / c)
        del counts[c]
    m = {"key": key, "counts": dict(sorted(counts.items())), "num_images": sum(counts.values()),
         "dropped_classes": dropped, "min_per_class": min_per_class, "from_svg": svgs,
         "smaller_than_64px": small, "duplicates": duplicates, "unreadable": unreadable, "notes": notes}  # fmt: skip
    if not counts:
        shutil.rmtree(tmp)
        raise ValueError(f"stamps: no category under {root} has {min_per_class} stamps (--min-per-class)")
    (tmp / "manifest.json").write_text(json.dumps(m, indent=1))
    _replace_dir(tmp, out)
    return m


# --------------------------------------------------------------------------- icons


def find_icons(root: Path) -> dict[str, tuple[int, Path]]:
    """Oxygen-layout icons (``<N>x<N>/<context>/<name>.png``): icon name -> (size, file) of its
    largest raster size; a name in several contexts counts once (the first context, sorted)."""
    best: dict[str, tuple[int, Path]] = {}
    for p in sorted(root.glob("*/*/*.png")):
        size_dir = p.parts[-3]
        w, _, h = size_dir.partition("x")
        if not (w.isdigit() and w == h) or not p.is_file():
            continue
        size = int(w)
        if p.stem not in best or size > best[p.stem][0]:
            best[p.stem] = (size, p)
    return best


def build_icons(root: Path, out: Path, min_size: int = 32, force: bool = False, log=print) -> dict:
    """A flat folder ``out/<name>.png``: one RGB image per icon name (its largest size, alpha
    composited on white, padded to a square if it is not one). Names whose largest size is
    under ``min_size`` are left out (a 32-px set would upscale them); symlinked and
    pixel-identical copies are kept once."""
    best = find_icons(root)
    if not best:
        raise ValueError(f"icons: no <N>x<N>/<context>/<name>.png under {root}")
    key = files_key([p for _, p in sorted(best.values(), key=lambda t: str(t[1]))], "icons", min_size)
    manifest = out.parent / f"{out.name}_manifest.json"  # next to the folder: a flat folder is all images
    if not force and (m := _fresh(manifest, key)):
        log(f"icons: reusing {out} ({m['num_images']} images)")
        return m
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".icons-", dir=out.parent))
    sizes = Counter(s for s, _ in best.values())
    too_small = sum(1 for s, _ in best.values() if s < min_size)
    real_seen: set[str] = set()
    pix_seen: dict[str, str] = {}
    links = duplicates = 0
    unreadable, kept_sizes = [], Counter()
    for name in sorted(best):
        size, p = best[name]
        if size < min_size:
            continue
        real = os.path.realpath(p)
        if real in real_seen:
            links += 1
            continue
        real_seen.add(real)
        try:
            with Image.open(p) as im:
                img = square_on_white(im)
        except Exception as err:
            unreadable.append(f"{p}: {type(err).__name__}: {err}")
            continue
        h = pixel_hash(img)
        if h in pix_seen:
            duplicates += 1
            continue
        pix_seen[h] = name
        img.save(tmp / f"{name}.png")
        kept_sizes[size] += 1
    n = sum(kept_sizes.values())
    m = {"key": key, "num_images": n, "names": len(best), "largest_size_of_names": dict(sorted(sizes.items())),
         "left_out_smaller_than_min_size": too_small, "min_size": min_size, "symlink_copies": links,
         "pixel_duplicates": duplicates, "kept_by_size": dict(sorted(kept_sizes.items())),
         "unreadable": unreadable}  # fmt: skip
    _replace_dir(tmp, out)
    manifest.write_text(json.dumps(m, indent=1))
    return m


# --------------------------------------------------------------------------- zips


def make_zip(
    folder: Path, dest: Path, resolution: int, workers: int = 1, force: bool = False, log=print
) -> dict:
    """The prepared zip of ``folder`` by the product (``prepare_dataset``); reused when a sidecar
    ``<dest>.json`` records the same folder content (its file names and sizes) and resolution."""
    from maxvit_gan.data.prepare import format_report, prepare_dataset

    files = sorted(p for p in folder.rglob("*.png"))
    key = files_key(files, "zip", resolution)
    side = dest.with_suffix(".json")
    if not force and dest.is_file() and (m := _fresh(side, key)):
        log(f"  reusing {dest} ({m['num_images']} images)")
        return m
    res = prepare_dataset(str(folder), str(dest), resolution, workers=workers, overwrite=True, progress=False)
    log("  " + format_report(res).replace("\n", "\n  "))
    m = {"key": key, "num_images": res.num_images, "num_classes": res.num_classes,
         "resolution": resolution, "content_hash": res.content_hash}  # fmt: skip
    side.write_text(json.dumps(m, indent=1))
    return m


def zip_class_names(path: Path) -> list[str] | None:
    """``class_names`` of a prepared zip's dataset.json (label id i is class_names[i])."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("dataset.json")).get("class_names")


# --------------------------------------------------------------------------- the command line


def zip_paths(out: Path = OUT) -> dict[str, Path]:
    """Where ``build`` writes each prepared zip (the benchmark driver reads them from here)."""
    paths = {f"glyphs32_{s}": out / f"glyphs32_{s}.zip" for s in SPLITS}
    paths.update(
        {"stamps32": out / "stamps32.zip", "stamps64": out / "stamps64.zip", "icons32": out / "icons32.zip"}
    )
    return paths


def _source(override: str | None, package: str, suffixes: tuple[str, ...]) -> tuple[list[Path], str]:
    """Source files: those under ``override`` when given, else those the package installed."""
    if override:
        root = Path(override)
        if not root.is_dir():
            raise FileNotFoundError(f"{override}: no such directory")
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file()), override
    files = [p for p in package_files(package) if p.suffix.lower() in suffixes]
    return files, f"{package} {package_version(package) or ''}".strip()


def _common_root(files: list[Path], marker: str) -> Path:
    """The folder named ``marker`` above the files (``stamps`` for Tux Paint, ``base`` for Oxygen)."""
    for p in files:
        if marker in p.parts:
            return Path(*p.parts[: len(p.parts) - p.parts[::-1].index(marker)])
    raise ValueError(f"no {marker}/ folder among the package's files")


def cmd_build(args) -> None:
    out = Path(args.out)
    only = args.only.split(",") if args.only else ["glyphs", "stamps", "icons"]
    unknown = set(only) - set(PACKAGES)
    if unknown:
        raise SystemExit(f"--only: unknown dataset(s) {sorted(unknown)}; choose from {list(PACKAGES)}")
    zips = zip_paths(out)
    for name in only:
        t0 = time.perf_counter()
        if name == "glyphs":
            files, where = _source(args.fonts, PACKAGES["glyphs"], (".ttf", ".otf"))
            print(f"glyphs: {len(files)} font files from {where}")
            m = build_glyphs(files, out / "glyphs", seed=args.seed, force=args.force)
            parts = ", ".join(f"{s} {len(m['fonts'][s])} fonts / {m['counts'][s]} images" for s in SPLITS)
            print(f"glyphs: {m['num_fonts']} distinct Latin fonts -> {out / 'glyphs'} (split.json: {parts})")
            for d in m["dropped"]:
                print(f"  dropped font {d}")
            for s in SPLITS:
                print(f"  {s}: {', '.join(Path(f).stem for f in m['fonts'][s])}")
                make_zip(out / "glyphs" / s, zips[f"glyphs32_{s}"], 32, args.workers, args.force)
        elif name == "stamps":
            files, where = _source(args.stamps, PACKAGES["stamps"], (".png", ".svg"))
            root = Path(args.stamps) if args.stamps else _common_root(files, "stamps")
            print(f"stamps: {len(files)} PNG/SVG files from {where} ({root})")
            m = build_stamps(root, out / "stamps", min_per_class=args.min_per_class, force=args.force)
            print(f"stamps: {m['num_images']} images in {len(m['counts'])} classes -> {out / 'stamps'} "
                  f"({m['from_svg']} rasterised from SVG, {m['smaller_than_64px']} under 64 px)")  # fmt: skip
            print("  " + ", ".join(f"{c} {n}" for c, n in m["counts"].items()))
            print(
                f"  dropped (< {m['min_per_class']} stamps): "
                + (", ".join(f"{c} {n}" for c, n in m["dropped_classes"].items()) or "none")
            )
            print(
                f"  {len(m['duplicates'])} pixel duplicates, {len(m['unreadable'])} unreadable; "
                + "; ".join(m["notes"])
            )
            for r in (32, 64):
                make_zip(out / "stamps", zips[f"stamps{r}"], r, args.workers, args.force)
        else:
            files, where = _source(args.icons, PACKAGES["icons"], (".png",))
            root = Path(args.icons) if args.icons else _common_root(files, "base")
            print(f"icons: {len(files)} PNG files from {where} ({root})")
            m = build_icons(root, out / "icons", min_size=args.icon_min_size, force=args.force)
            print(f"icons: {m['num_images']} images -> {out / 'icons'} ({m['names']} icon names; "
                  f"{m['left_out_smaller_than_min_size']} left out, largest size < {m['min_size']} px; "
                  f"{m['symlink_copies']} symlinked and {m['pixel_duplicates']} pixel-identical copies; "
                  f"kept by size {m['kept_by_size']})")  # fmt: skip
            make_zip(out / "icons", zips["icons32"], 32, args.workers, args.force)
        print(f"{name}: done in {time.perf_counter() - t0:.1f} s")


def cmd_judge(args) -> None:
    sys.path.insert(0, str(HERE))
    import glyph_judge

    glyph_judge.main_judge(Path(args.out), force=args.force, seed=args.seed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    ap.add_argument("--out", default=str(OUT), help="output folder (default: benchmarks/out/real)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the image folders and prepared zips (reused unless --force)")
    b.add_argument("--only", default="", help="comma list of glyphs,stamps,icons (default: all)")
    b.add_argument("--force", action="store_true", help="rebuild even when the inputs are unchanged")
    b.add_argument("--seed", type=int, default=0, help="seed of the font split (default 0)")
    b.add_argument("--workers", type=int, default=1, help="decoding processes of the zip step (default 1)")
    b.add_argument(
        "--min-per-class", type=int, default=20, help="stamps: drop categories with fewer (default 20)"
    )
    b.add_argument(
        "--icon-min-size",
        type=int,
        default=32,
        help="icons: leave out names whose largest size is smaller (default 32)",
    )
    b.add_argument("--fonts", help="a folder of font files instead of fonts-noto-core's files")
    b.add_argument(
        "--stamps", help="a Tux Paint stamps folder (<category>/.../*.png|svg) instead of the package's"
    )
    b.add_argument(
        "--icons", help="an icon theme folder (<N>x<N>/<context>/*.png) instead of oxygen-icon-theme's base/"
    )
    b.set_defaults(func=cmd_build)
    j = sub.add_parser("judge", help="train (or load the cached) glyph judge; print its judge-test accuracy")
    j.add_argument("--force", action="store_true", help="retrain even when cached")
    j.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    j.set_defaults(func=cmd_judge)
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except MissingPackage as err:
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()

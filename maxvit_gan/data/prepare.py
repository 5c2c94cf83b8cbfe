"""Image folder -> prepared zip (the StyleGAN2-ADA `dataset_tool` format).

Every readable image is converted to RGB (`to_rgb`: alpha composited on white),
preprocessed with the ADM `center_crop_arr` to R x R and stored as a PNG
(`00000/img00000000.png`, 1000 per folder, numbered in the sorted order of the
source files, with no gaps) in an uncompressed (stored) zip, with `dataset.json`:

    {"labels": [["00000/img00000000.png", 0], ...] or null,
     "class_names": [...], "resolution": R, "num_images": N,
     "content_hash": "<sha256>", "skipped": [...], ...}

StyleGAN2-ADA reads only `labels`; the other keys are ours. `content_hash` is a
sha256 over, in order, each image's archive name, label and the sha256 of its RGB
pixels: it changes exactly when the pixels or labels do (not with the PNG encoder
or compression level). The FID reference cache keys on it.

Decoding runs in `workers` processes (`imap`, so the output order is the
deterministic source order whatever the number of workers); zip member timestamps
are fixed, so the same input gives a byte-identical zip. The zip is written to
`.<dest>.tmp-<pid>` next to it (maxvit_gan.files) and renamed onto `dest` only when complete: an interrupted or
failed run never leaves a file at `dest`. A SIGTERM (what `timeout`, SLURM and `kill` send) is
turned into :class:`PrepareStopped` while the zip is written, so that temporary file is removed
then too (the decoding workers die with the pool; Ctrl-C reaches only this process); what a
`kill -9` left is removed by the next run to the same `dest`. `resolution` is at most
:data:`MAX_RESOLUTION`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import warnings
import zipfile
from dataclasses import dataclass, field

from PIL import Image

from maxvit_gan.config import PrepareConfig
from maxvit_gan.data.datasets import scan_image_folder, subset_indices
from maxvit_gan.data.transforms import load_rgb
from maxvit_gan.files import atomic_path, stale_temporaries

__all__ = ["MAX_RESOLUTION", "PrepareResult", "PrepareStopped", "prepare_dataset", "format_report"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: reproducible bytes
# The largest side accepted. GAN datasets stop at 1024 (FFHQ; 256 for ImageNet here), so 4096 leaves
# room; one image at 4096 is 50 MB raw and a worker holds a few copies (decode, resize, crop, PNG),
# about 0.2 GB, so 32 workers fit in 8 GB. At resolution=100000 one image alone is 30 GB: the
# kernel's OOM killer, not an error message, would end the run.
MAX_RESOLUTION = 4096


class PrepareStopped(BaseException):
    """A SIGTERM arrived while the zip was written (a BaseException, like KeyboardInterrupt: an
    ``except Exception`` on the way must not swallow it); the temporary file is removed."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _raise_stop(signum, frame):
    raise PrepareStopped(signum)


@contextlib.contextmanager
def _stop_on_sigterm():
    """SIGTERM raises :class:`PrepareStopped` in the block (main thread only: elsewhere the
    caller's handling stands), so the cleanup of ``atomic_path`` runs; the old handler after."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _worker_signals() -> None:
    """In each decoding worker: SIGTERM kills it (the parent's handler is inherited through fork,
    and ``Pool.terminate`` sends SIGTERM); Ctrl-C, which the terminal sends to every process of
    the group, is the parent's to handle (no traceback per worker)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _remove_stale_temporaries(dest: str) -> None:
    """What a killed run (``kill -9``, a node lost) left next to ``dest``: its temporary zip,
    which can be as large as the dataset, is removed; those of other files (another ``dest``)
    are named in a warning and left alone. Only files whose writer's pid is gone are touched."""
    own, others = [], []
    for p in stale_temporaries(os.path.dirname(dest)):
        (own if p.name.startswith(f".{os.path.basename(dest)}.tmp-") else others).append(p)
    for p in own:
        size = p.stat().st_size
        p.unlink(missing_ok=True)
        warnings.warn(f"dest: removed {p} ({_size(size)}), left by a process that is gone", stacklevel=3)
    if others:
        names = ", ".join(f"{p.name} ({_size(p.stat().st_size)})" for p in others[:5]) + (", ..." if len(others) > 5 else "")
        warnings.warn(
            f"dest: {os.path.dirname(dest)} holds temporary files left by processes that are gone: {names}; "
            "remove them if nothing is writing them",
            stacklevel=3,
        )


@dataclass
class PrepareResult:
    dest: str
    num_images: int
    resolution: int
    num_classes: int
    content_hash: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, error)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


def _member_name(k: int) -> str:
    return f"{k // 1000:05d}/img{k:08d}.png"


def _process_image(task: tuple[str, int, int]) -> tuple[bytes | None, bytes | None, str]:
    """Decode, crop and PNG-encode one file: `(png, pixel_sha256, error)`; never raises."""
    path, resolution, compress_level = task
    try:
        arr = load_rgb(path, resolution)
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="PNG", compress_level=compress_level, optimize=False)
        return buf.getvalue(), hashlib.sha256(arr.tobytes()).digest(), ""
    except Exception as err:  # unreadable / truncated / unsupported: reported, skipped
        return None, None, f"{type(err).__name__}: {err}"


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def prepare_dataset(
    source: str,
    dest: str,
    resolution: int,
    max_images: int | None = PrepareConfig.max_images,  # defaults: maxvit_gan.config.PrepareConfig
    workers: int | None = PrepareConfig.workers,
    use_labels: bool = PrepareConfig.use_labels,
    compress_level: int = PrepareConfig.compress_level,
    overwrite: bool = PrepareConfig.overwrite,
    progress: bool = PrepareConfig.progress,
) -> PrepareResult:
    """Write the prepared zip of the image folder `source` to `dest`; see the module doc.

    Unreadable files are skipped and listed in `PrepareResult.skipped` (and in
    `dataset.json`). Raises if `source` is missing or holds no readable image, or
    if `dest` exists and not `overwrite`.
    """
    if not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"resolution: must be a positive integer, got {resolution!r}")
    if resolution > MAX_RESOLUTION:
        raise ValueError(
            f"resolution: at most {MAX_RESOLUTION}, got {resolution} (one {resolution} px image alone takes "
            f"{_size(3 * resolution * resolution)} of memory)"
        )
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level: must be in 0..9, got {compress_level}")
    if not os.path.exists(source):
        raise FileNotFoundError(f"source: {source!r} does not exist")
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and not overwrite:
        raise FileExistsError(f"dest: {dest!r} already exists (pass overwrite=true to replace it)")
    _remove_stale_temporaries(dest)
    files, labels, class_names = scan_image_folder(source, use_labels)
    keep = subset_indices(len(files), max_images)
    tasks = [(os.path.join(source, files[i]), resolution, compress_level) for i in keep]
    workers = _default_workers() if workers is None else workers

    os.makedirs(os.path.dirname(dest), exist_ok=True)
    digest = hashlib.sha256(f"maxvit-gan-zip-v1\0{resolution}\n".encode())
    out_labels: list[list] = []
    skipped: list[tuple[str, str]] = []
    # including KeyboardInterrupt and SIGTERM: never a partial file at dest, nor a temporary one
    with _stop_on_sigterm(), atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            pool = None
            if workers > 1 and len(tasks) > 1:
                pool = multiprocessing.get_context().Pool(min(workers, len(tasks)), initializer=_worker_signals)
                results = pool.imap(
                    _process_image, tasks, chunksize=max(1, min(64, len(tasks) // (4 * workers)))
                )
            else:
                results = map(_process_image, tasks)
            try:
                from tqdm import tqdm

                results = tqdm(results, total=len(tasks), unit="img", desc="prepare", disable=not (progress and sys.stderr.isatty()))
                k = 0
                for t, (png, pixel_hash, err) in enumerate(results):
                    src_index = int(keep[t])
                    if png is None:
                        skipped.append((files[src_index], err))
                        continue
                    name = _member_name(k)
                    label = int(labels[src_index]) if labels is not None else -1
                    zf.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), png)
                    digest.update(f"{name}\0{label}\0".encode() + pixel_hash)
                    if labels is not None:
                        out_labels.append([name, label])
                    k += 1
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
            if k == 0:
                raise ValueError(f"source: none of the {len(tasks)} images in {source!r} could be read")
            meta = {
                "labels": out_labels if labels is not None else None,
                "class_names": class_names if labels is not None else None,
                "resolution": resolution,
                "num_images": k,
                "content_hash": digest.hexdigest(),
                "preprocessing": "adm_center_crop_arr, rgb (alpha over white)",
                "num_skipped": len(skipped),
                "skipped": [path for path, _ in skipped],
            }
            zf.writestr(zipfile.ZipInfo("dataset.json", date_time=_ZIP_DATE), json.dumps(meta, indent=1))
    return PrepareResult(
        dest=dest,
        num_images=k,
        resolution=resolution,
        num_classes=len(class_names) if labels is not None else 0,
        content_hash=meta["content_hash"],
        skipped=skipped,
    )


def format_report(result: PrepareResult) -> str:
    size_mb = os.path.getsize(result.dest) / 1e6
    classes = f"{result.num_classes} classes" if result.num_classes else "unconditional"
    lines = [
        f"wrote {result.num_images} images ({result.resolution}x{result.resolution}, {classes}, "
        f"{size_mb:.1f} MB) to {result.dest}",
        f"content_hash: {result.content_hash}",
    ]
    if result.skipped:
        lines.append(f"skipped {result.num_skipped} unreadable file(s):")
        lines += [f"  {path}: {err}" for path, err in result.skipped]
    else:
        lines.append("skipped 0 files")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: maxvit-gan prepare source=DIR dest=FILE.zip resolution=R")

"""Image-folder and prepared-zip datasets.

Both return `(uint8 tensor [3, R, R] contiguous, int64 scalar label)` and expose
`resolution`, `num_classes` (0 when unconditional), `labels` (numpy int64, one per
image, for the FID fake-label distribution), `name`, `class_names`, `num_skipped`
and `content_hash`. No random flips here: the training step flips, seeded.

Unreadable or truncated images are skipped with a warning that names the file and
counted in `num_skipped`; `__getitem__` then returns the next readable image (with
its own label), so an epoch never crashes on a bad file. A missing path, an empty
dataset or one with no readable image is an error at construction. The count is shared
with DataLoader workers (each warns for what it reads; `num_skipped` counts them all).

`max_images=N` keeps a fixed random subset of N images (numpy seed 0), in listing
order, so a subset of ImageNet still spans all classes (the first N files would
cover only the first few classes). `prepare_dataset.py` selects the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import warnings
import zipfile

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from maxvit_gan.data.transforms import center_crop_arr, load_rgb, to_rgb

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "ZipDataset",
    "dataset_content_hash",
    "list_image_files",
    "scan_image_folder",
    "subset_indices",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def list_image_files(root: str) -> list[str]:
    """Relative paths (with '/') of all images under `root`, recursive, sorted.

    Hidden files and folders (leading '.') are ignored (e.g. macOS `._x.jpg`). Symbolic links
    are followed, but every real folder is visited once: a link back up the tree (``ln -s .
    loop``) or a second link to the same folder is skipped with a warning, never walked again.
    """
    found = []
    seen: set[tuple[int, int]] = set()
    repeats: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: already listed
            repeats.append(os.path.relpath(dirpath, root))
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            try:
                sub = os.stat(os.path.join(dirpath, d))
            except OSError:  # a dangling link
                continue
            if (sub.st_dev, sub.st_ino) in seen:
                repeats.append(os.path.relpath(os.path.join(dirpath, d), root))
                continue
            keep.append(d)
        dirnames[:] = keep
        rel_dir = os.path.relpath(dirpath, root)
        for fname in filenames:
            if _is_image(fname):
                rel = fname if rel_dir == "." else os.path.join(rel_dir, fname)
                found.append(rel.replace(os.sep, "/"))
    if repeats:
        warnings.warn(
            f"{root}: {len(repeats)} folder(s) reached a second time through a symbolic link were skipped "
            f"(e.g. {repeats[0]!r}: a link loop or a second link to the same folder)",
            stacklevel=2,
        )
    return sorted(found)


def scan_image_folder(root: str, use_labels: bool = True) -> tuple[list[str], np.ndarray | None, list[str]]:
    """List the images of a folder and their labels.

    Returns `(relative_paths, labels, class_names)`. When `use_labels` and images
    live in subfolders, the first path component is the class, classes are the
    sorted folder names and labels index them (ImageNet `train/` layout). A flat
    folder, or `use_labels=False`, gives `labels=None` (every image, subfolders included).

    Images lying directly in `root` next to subfolders have no class: when they are a few
    next to several class folders they are left out with a warning that says what is
    trained on; when they are as many as those in subfolders, or there is one subfolder
    only (a flat folder with a `thumbs/` inside), the layout is ambiguous: an error that
    says what to do.
    """
    if not os.path.exists(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root!r} is not a directory")
    files = list_image_files(root)
    if not files:
        raise ValueError(f"image folder {root!r} contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    in_subdir = ["/" in f for f in files]
    if not use_labels or not any(in_subdir):
        return files, None, []
    loose = [f for f, sub in zip(files, in_subdir) if not sub]
    nested = [f for f, sub in zip(files, in_subdir) if sub]
    class_names = sorted({f.split("/", 1)[0] for f in nested})
    if loose:
        folders = ", ".join(f"{c}/" for c in class_names[:4]) + (", ..." if len(class_names) > 4 else "")
        if len(loose) >= len(nested) or len(class_names) == 1:
            raise ValueError(
                f"image folder {root!r} mixes {len(loose)} image(s) at its top level with {len(nested)} in "
                f"{len(class_names)} subfolder(s) ({folders}): not a class-folder layout. Set "
                f"data.conditional=false (use_labels=false) to train on all {len(files)} images without classes, "
                "or put every image in a class folder"
            )
        warnings.warn(
            f"{root}: training on the {len(nested)} images of {len(class_names)} class folders; the {len(loose)} "
            f"image(s) at the top level have no class and are left out (e.g. {loose[0]}); "
            "data.conditional=false would use every image, without classes",
            stacklevel=2,
        )
        files = nested
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[f.split("/", 1)[0]] for f in files], dtype=np.int64)
    return files, labels, class_names


def subset_indices(n: int, max_images: int | None) -> np.ndarray:
    """Indices kept by `max_images`: all of them, or a seeded random subset in order."""
    if max_images is None or max_images >= n:
        return np.arange(n, dtype=np.int64)
    if max_images <= 0:
        raise ValueError(f"max_images must be positive, got {max_images}")
    return np.sort(np.random.default_rng(0).permutation(n)[:max_images]).astype(np.int64)


def _available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _zip_directory_hash(zf: zipfile.ZipFile) -> str:
    """Hash of a zip's member names, CRC32s and sizes (the central directory): no decoding."""
    h = hashlib.sha256()
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        h.update(f"{info.filename}\0{info.CRC:08x}\0{info.file_size}\n".encode())
    return h.hexdigest()


def _folder_listing_hash(root: str, files: list[str]) -> str:
    """Hash of relative paths, sizes and modification times (ns) of `files` under `root`."""
    h = hashlib.sha256()
    for rel in files:
        st = os.stat(os.path.join(root, rel))
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _path_content_hash(path: str) -> str:
    """The hash of a dataset on disk (see `dataset_content_hash`)."""
    if os.path.isdir(path):
        return _folder_listing_hash(path, list_image_files(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset {path!r} does not exist")
    with zipfile.ZipFile(path) as zf:
        if "dataset.json" in zf.namelist():
            meta = json.loads(zf.read("dataset.json"))
            if isinstance(meta, dict) and meta.get("content_hash"):
                return str(meta["content_hash"])
        return _zip_directory_hash(zf)


def _decoded_items_hash(dataset, n: int) -> str:
    """sha256 over the shape, dtype and bytes of the first `n` images of `dataset`."""
    sha = hashlib.sha256(f"len={n}".encode())
    for i in range(n):
        item = dataset[i]
        img = item[0] if isinstance(item, (list, tuple)) else item
        arr = np.ascontiguousarray(img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img))
        sha.update(f"{arr.dtype}{arr.shape}".encode())
        sha.update(arr.tobytes())
    return "sha256:" + sha.hexdigest()


def dataset_content_hash(source, max_items: int | None = None) -> str:
    """A hash that changes whenever the content of a dataset changes (the key of cached FID statistics).

    `source` is one of:
    - a path (str or os.PathLike), a sha256 hex digest:
      - zip: the `content_hash` that `prepare_dataset.py` stored in `dataset.json`
        (sha256 over every image's pixels and label, in order); for a zip made by
        another tool, a hash of the zip directory (member names, CRC32s, sizes).
      - folder: a hash of the images' relative paths, sizes and modification times.
        Cheap (no decoding) even for ImageNet; a copy that does not keep mtimes gets a
        new hash, which costs a recomputation of cached statistics, never a stale one.
    - a dataset with a `content_hash` (attribute or method; every dataset of this package
      has one): that value.
    - any other dataset (`len` and `[i]` -> image or (image, ...)): ``"sha256:"`` + a hash
      of every decoded image (dtype, shape, bytes) of the first `max_items`. Exact but it
      reads the whole dataset once: fine for small datasets, give big ones a `content_hash`.

    `max_items`: the statistics cover only the first `max_items` items; for a path or a
    `content_hash` the result is then ``f"{hash}|n={max_items}"``.
    """
    if isinstance(source, (str, os.PathLike)):
        h = _path_content_hash(os.fspath(source))
    else:
        h = getattr(source, "content_hash", None)
        if h is None:
            n = len(source) if max_items is None else min(len(source), max_items)
            return _decoded_items_hash(source, n)
        h = h() if callable(h) else h
    return f"{h}|n={max_items}" if max_items is not None else str(h)


class DatasetChangedError(RuntimeError):
    """The dataset file was replaced or rewritten while in use: reading on would mix two datasets."""


class _ImageDataset(Dataset):
    """Shared logic: subset, labels, skip-and-count of unreadable images."""

    path: str
    resolution: int

    def _setup(
        self,
        raw_names: list[str],
        raw_labels: np.ndarray | None,
        class_names: list[str],
        use_labels: bool,
        max_images: int | None,
    ) -> None:
        keep = subset_indices(len(raw_names), max_images)
        self._names = [raw_names[i] for i in keep]
        self._subset = None if len(keep) == len(raw_names) else keep
        if use_labels and raw_labels is not None:
            self.labels = np.ascontiguousarray(raw_labels[keep], dtype=np.int64)
            self.num_classes = max(len(class_names), int(raw_labels.max()) + 1)
            self.class_names = list(class_names)
        else:
            self.labels = np.zeros(len(keep), dtype=np.int64)
            self.num_classes = 0
            self.class_names = []
        self.skipped_files: list[str] = []  # the files this process found unreadable
        # one flag per image, in memory shared with DataLoader workers (forked, or spawned: the
        # array travels with the dataset then): an image found unreadable in a worker is counted
        # where the trainer can see it, and not read again by other workers
        self._bad_flags = multiprocessing.RawArray("B", max(len(keep), 1))
        self._content_hash: str | None = None

    @property
    def num_skipped(self) -> int:
        """Unreadable images found so far, by this process and its DataLoader workers."""
        return int(np.frombuffer(self._bad_flags, dtype=np.uint8).sum())

    def __getstate__(self):
        state = self.__dict__.copy()
        from multiprocessing import context

        if context.get_spawning_popen() is None:  # plain pickling: a private copy of the flags
            state["_bad_flags"] = bytearray(bytes(self._bad_flags))
        return state

    def __len__(self) -> int:
        return len(self._names)

    def _load(self, i: int) -> np.ndarray:  # (R, R, 3) uint8
        raise NotImplementedError

    def _mark_bad(self, i: int, err: BaseException) -> None:
        self._bad_flags[i] = 1
        self.skipped_files.append(self._names[i])
        warnings.warn(
            f"{self.name}: skipping unreadable image {self._names[i]!r} ({type(err).__name__}: {err})",
            stacklevel=3,
        )

    def _try_load(self, i: int) -> np.ndarray | None:
        if self._bad_flags[i]:
            return None
        try:
            return self._load(i)
        except DatasetChangedError:  # not one bad image: the whole file changed under the run
            raise
        except Exception as err:  # any decoding error: skip the file, never crash mid-epoch
            self.check_unchanged()  # ... unless the file was rewritten under an open reader (`cp new.zip d.zip`)
            self._mark_bad(i, err)
            return None

    def check_unchanged(self) -> None:
        """Raise DatasetChangedError when the data is no longer what was opened (a zip: see
        ZipDataset); a folder is not checked."""

    def _probe(self) -> np.ndarray:
        """Load the first readable image; a dataset with none is an error now, not mid-training."""
        for i in range(len(self)):
            arr = self._try_load(i)
            if arr is not None:
                return arr
        raise ValueError(f"{self.path}: none of the {len(self)} images could be read")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        for k in range(n):  # the next readable image stands in for an unreadable one
            j = (index + k) % n
            arr = self._try_load(j)
            if arr is not None:
                image = torch.from_numpy(arr.transpose(2, 0, 1).copy())  # own memory, C-contiguous
                return image, torch.tensor(int(self.labels[j]), dtype=torch.int64)
        raise RuntimeError(f"{self.path}: no readable image left ({self.num_skipped} skipped)")

    @property
    def content_hash(self) -> str:
        """`dataset_content_hash` of the path, combined with the subset when `max_images` cuts it."""
        if self._content_hash is None:
            h = self._base_hash()
            if self._subset is not None:
                h = hashlib.sha256(f"{h}\0subset\0{self._subset.tobytes().hex()}".encode()).hexdigest()
            self._content_hash = h
        return self._content_hash

    def _base_hash(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, resolution={self.resolution}, "
            f"images={len(self)}, num_classes={self.num_classes})"
        )


class ImageFolderDataset(_ImageDataset):
    """Images under a folder, decoded and `center_crop_arr`-ed to `resolution` on the fly.

    Class subfolders give labels (sorted folder names -> 0..K-1; the ImageNet
    `train/` layout); a flat folder, or `use_labels=False`, is unconditional.
    Files: .jpg .jpeg .png .webp .bmp, found recursively.
    """

    def __init__(self, path: str, resolution: int, use_labels: bool = True, max_images: int | None = None):
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.path = os.fspath(path)
        self.resolution = int(resolution)
        self.name = os.path.basename(os.path.normpath(self.path)) or "folder"
        files, labels, class_names = scan_image_folder(self.path, use_labels)
        self._setup(files, labels, class_names, use_labels, max_images)
        self._probe()

    def _load(self, i: int) -> np.ndarray:
        return load_rgb(os.path.join(self.path, self._names[i]), self.resolution)

    def _base_hash(self) -> str:
        return _folder_listing_hash(self.path, self._all_files())

    def _all_files(self) -> list[str]:
        return list_image_files(self.path) if self._subset is not None else self._names


class ZipDataset(_ImageDataset):
    """A prepared dataset: a zip of images + `dataset.json` (StyleGAN2-ADA format).

    `dataset.json` holds `{"labels": [["00000/img00000000.png", 3], ...]}` or
    `"labels": null` (unconditional); a zip without it is unconditional too.
    `resolution=None` takes the size of the first image; an image of another size
    goes through `center_crop_arr` (so a 256-px zip can feed a 128-px run; this is
    close to, not identical with, preparing at 128 from the originals).

    Each process opens its own zip handle, lazily, and reopens it after a fork
    (DataLoader workers); a handle is never pickled. `in_memory=True` decodes
    every image once into a single uint8 array (shared copy-on-write with forked
    workers); it refuses, naming the size in GB, when that does not fit in the
    available memory.
    """

    def __init__(
        self,
        path: str,
        resolution: int | None = None,
        use_labels: bool = True,
        max_images: int | None = None,
        in_memory: bool = False,
    ):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"zip dataset {self.path!r} does not exist")
        if not os.path.isfile(self.path):
            raise ValueError(f"zip dataset {self.path!r} is not a file")
        self.name = os.path.splitext(os.path.basename(self.path))[0]
        self._zf: zipfile.ZipFile | None = None
        self._zf_pid = -1
        self._identity = self._stat()  # what every later open must find (a replaced zip: new pixels, old labels)
        self._data: np.ndarray | None = None
        try:
            zf = self._zip()
        except zipfile.BadZipFile as err:
            raise ValueError(f"{self.path!r} is not a valid zip file ({err})") from err
        names = sorted(n for n in zf.namelist() if _is_image(n))
        if not names:
            raise ValueError(f"zip dataset {self.path!r} contains no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.meta = self._read_meta(zf)
        class_names = self.meta.get("class_names") or []
        if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
            raise ValueError(f"{self.path}: dataset.json 'class_names' must be a list of strings")
        raw_labels = self._parse_labels(self.meta.get("labels"), names, len(class_names))
        self._setup(names, raw_labels, class_names, use_labels, max_images)

        if resolution is not None and resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.resolution = int(resolution) if resolution is not None else 0  # 0: take the first image's
        first = self._probe()
        if resolution is None:
            self.resolution = first.shape[0]
        if in_memory:
            self._load_all()

    def _read_meta(self, zf: zipfile.ZipFile) -> dict:
        if "dataset.json" not in zf.namelist():
            return {}
        try:
            meta = json.loads(zf.read("dataset.json"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{self.path}: dataset.json is not valid JSON ({err})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{self.path}: dataset.json must hold a JSON object, not a {type(meta).__name__}")
        return meta

    def _parse_labels(self, labels, names: list[str], num_class_names: int = 0) -> np.ndarray | None:
        """``labels``: null, ``[[member name, class], ...]`` (StyleGAN2-ADA) or ``{name: class}``.
        Classes are integers 0..K-1 (K = the number of class_names, when listed); every error is one
        line naming the file and the entry."""
        if labels is None:
            return None
        where = f"{self.path}: dataset.json"
        if isinstance(labels, dict):
            pairs = list(labels.items())
        elif isinstance(labels, list):
            pairs = labels
        else:
            raise ValueError(
                f"{where} 'labels' must be null or a list of [file name, class] pairs, not a {type(labels).__name__}"
            )
        table = {}
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ValueError(f"{where} 'labels' entry {k} is {str(pair)[:80]}, not a [file name, class] pair")
            table[pair[0]] = pair[1]
        out = np.empty(len(names), dtype=np.int64)
        for k, name in enumerate(names):
            if name not in table:
                raise ValueError(f"{where} has no label for {name!r}")
            value = table[name]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: the label of {name!r} is {str(value)[:40]}; only integer class labels are supported")
            if value < 0 or (num_class_names and value >= num_class_names):
                bound = f"0..{num_class_names - 1} (dataset.json lists {num_class_names} class_names)" if num_class_names else ">= 0"
                raise ValueError(f"{where}: the label of {name!r} is {value}, out of range: classes are {bound}")
            out[k] = value
        if out.size and not num_class_names:  # classes are 0..max: most of them must have images
            used = np.unique(out)
            top = int(used[-1])
            empty = top + 1 - len(used)
            if empty > len(used):
                raise ValueError(
                    f"{where}: the labels take {len(used)} distinct value(s) but the largest is {top}: "
                    f"{empty} of the {top + 1} classes would have no image; number the classes 0..K-1 "
                    "(or list them in class_names)"
                )
            if empty:
                missing = sorted(set(range(top + 1)) - set(used.tolist()))
                warnings.warn(f"{where}: classes {missing[:10]} have no image", stacklevel=3)
        return out

    def _zip(self) -> zipfile.ZipFile:
        pid = os.getpid()
        if self._zf is None or self._zf_pid != pid:
            # After a fork the inherited handle shares its file offset with the parent: never reuse it.
            self.check_unchanged()
            self._zf = zipfile.ZipFile(self.path)
            self._zf_pid = pid
        return self._zf

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def check_unchanged(self) -> None:
        """A DatasetChangedError when the zip is not the file opened at the start (size, mtime, inode).
        In memory (``in_memory``): never, the file is not read again."""
        if self._data is not None:
            return
        try:
            now = self._stat()
        except OSError as err:
            raise DatasetChangedError(f"data.path: {self.path} is gone ({err.strerror}) since training started") from None
        if now != self._identity:
            raise DatasetChangedError(
                f"data.path: {self.path} was replaced or rewritten since training started (size {self._identity[0]} -> "
                f"{now[0]} bytes); reading on would mix its images with the old labels. Restore it, or train in a new run_dir"
            )

    def __getstate__(self):
        state = super().__getstate__()
        state["_zf"] = None
        state["_zf_pid"] = -1
        return state

    def close(self) -> None:
        if self._zf is not None and self._zf_pid == os.getpid():
            self._zf.close()
        self._zf = None

    def _decode(self, i: int) -> np.ndarray:
        data = self._zip().read(self._names[i])
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if self.resolution == 0:  # probing for the resolution: keep the size, square it
                side = min(img.size)
                return center_crop_arr(to_rgb(img), side)
            if img.mode == "RGB" and img.size == (self.resolution, self.resolution):
                return np.asarray(img)
            return center_crop_arr(to_rgb(img), self.resolution)

    def _load(self, i: int) -> np.ndarray:
        if self._data is not None:
            return self._data[i].transpose(1, 2, 0)
        return self._decode(i)

    def _load_all(self) -> None:
        n, r = len(self), self.resolution
        need = n * 3 * r * r
        avail = _available_memory_bytes()
        if avail is not None and need > 0.9 * avail:
            raise MemoryError(
                f"{self.path}: in_memory needs {need / 1e9:.1f} GB ({n} images at {r}x{r}) but only "
                f"{avail / 1e9:.1f} GB of memory is available; set data.in_memory=false"
            )
        data = np.zeros((n, 3, r, r), dtype=np.uint8)
        try:
            from tqdm import tqdm

            it = tqdm(range(n), desc=f"loading {self.name} into memory", disable=n < 20000 or not sys.stderr.isatty(), leave=False)
        except ImportError:  # pragma: no cover
            it = range(n)
        for i in it:
            arr = self._try_load(i)
            if arr is not None:
                data[i] = arr.transpose(2, 0, 1)
        self._data = data

    def _base_hash(self) -> str:
        return _path_content_hash(self.path)

"""Atomic file writes: the one temporary-name style, the one rename, the one cleanup.

A file is written as ``.<name>.tmp-<pid>`` next to its final path and renamed onto it when
complete, so a reader (or a crash, a kill, a full disk) never sees half a file. What a killed
writer leaves behind carries its pid: :func:`stale_temporaries` finds those of dead processes.
Files get the permissions the umask gives (``tempfile.mkstemp`` would make them 0600, unreadable
to the others on a shared machine). A leaf module: every layer may import it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def temp_path(path: str | os.PathLike) -> Path:
    """Where ``path`` is written before its rename (hidden, tagged with this process's pid)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give the file ``path`` (or every file under the folder ``path``) the permissions the umask
    gives a new file: what writers that ignore it (safetensors' ``save_file``, ``mkstemp``: 0600)
    leave. Files this process may not change are left as they are."""
    path = Path(path)
    mode = 0o666 & ~_umask()
    for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
        with contextlib.suppress(OSError):
            os.chmod(f, mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: ``tmp`` is renamed onto ``p`` when the block
    ends without an error, and removed when it raises (including KeyboardInterrupt)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if tmp.is_file():
            follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale_temporaries(folder: str | os.PathLike, all_pids: bool = False) -> list[Path]:
    """Temporary files in ``folder`` whose writer is gone (``all_pids``: every one, e.g. when the
    caller holds the lock of the folder's only writer)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if m and p.is_file() and (all_pids or not _alive(int(m.group("pid")))):
            out.append(p)
    return sorted(out)

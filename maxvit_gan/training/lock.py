"""One trainer per run directory: a lock file held by rank 0 for the whole run.

The lock is an exclusive ``flock`` on ``<run>/train.lock`` (name: ``maxvit_gan.rundir``), which
the kernel releases when its holder exits, however it exits (kill -9 included): a lock left by a
dead trainer is never in the way, it is simply taken over (with a warning naming the old
holder). The file's content says who holds it (pid, host, start time, command line), so a
second trainer started on the same directory fails at once with a message naming the holder.

Where ``flock`` is not supported (some network file systems), the holder's pid is checked
instead: a holder on this host that is no longer running is stale; one on another host is
assumed alive (delete the file by hand when it is not).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None


class RunDirLockedError(RuntimeError):
    """Another trainer holds the run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def describe_holder(info: dict) -> str:
    if not info:
        return "an unknown process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["time"])) if "time" in info else "?"
    own = " (this process)" if info.get("pid") == os.getpid() and info.get("host") == socket.gethostname() else ""
    cmd = " ".join(info.get("argv") or [])[:200]
    return f"pid {info.get('pid')}{own} on host {info.get('host')} since {since}" + (f" ({cmd})" if cmd else "")


class RunLock:
    """``RunLock(path).acquire()`` ... ``release()``; also released when garbage collected."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def read_holder(self) -> dict:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def acquire(self) -> dict:
        """Take the lock or raise :class:`RunDirLockedError` naming the holder. Returns the
        previous (stale) holder's info when the lock was taken over, else ``{}``."""
        if self._fd is not None:
            return {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                holder = self.read_holder()
                os.close(fd)
                raise RunDirLockedError(self._busy_message(holder))
            try:  # a holder that released meanwhile unlinked the file we opened: start over
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = self.read_holder()
        if previous and not (previous.get("pid") == os.getpid() and previous.get("host") == socket.gethostname()):
            warnings.warn(
                f"{self.path}: taking over a stale lock: its holder, {describe_holder(previous)}, is no longer running",
                stacklevel=2,
            )
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "argv": sys.argv}
        data = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        return previous

    def _flock(self, fd: int) -> bool:
        """True when locked; False when another process holds it."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as err:
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        # no flock here: judge by the recorded holder
        holder = self.read_holder()
        if not holder:
            return True
        if holder.get("host") != socket.gethostname():
            return False
        return holder.get("pid") == os.getpid() or not _pid_alive(int(holder.get("pid", -1)))

    def _busy_message(self, holder: dict) -> str:
        run = self.path.parent
        pid = holder.get("pid")
        if holder.get("host") not in (None, socket.gethostname()):  # e.g. a crashed node's lock on NFS
            hint = (
                f"stop it first (on {holder['host']}: kill {pid}), or, if that machine or trainer is gone, "
                "delete the lock file"
            )
        else:
            hint = f"stop it first (kill {pid}: it saves a checkpoint and exits)" if pid else "stop it first"
        return (
            f"run directory {run} is in use by another trainer: {describe_holder(holder)}; {hint}, "
            f"or train in another hydra.run.dir (lock file: {self.path})"
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: nobody else can have locked this inode
        except OSError:
            pass
        os.close(fd)

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown
            pass

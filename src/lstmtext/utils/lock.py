"""An exclusive lock on an output folder, so that two runs never write the same one at once.

The lock is an ``flock`` on a hidden file next to the folder (``runs/.imdb.lock`` for ``runs/imdb``):
next to it, not in it, because a save replaces the folder itself (a new inode), and a lock inside it
would be replaced with it. The operating system releases an ``flock`` when its process ends, however it
ends (a crash, SIGKILL, a power cut), so a lock is never left stale. While held, the file says who
holds it (process id, start time, command line) for the message the second writer gets. It is removed
on release; a process that opened it just before has its lock on a removed file and notices, so two
holders are never possible.

Without ``fcntl`` (Windows) the lock is not taken.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import TracebackType

from lstmtext.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


class FolderLockedError(CheckpointError):
    """Another process is writing the folder (its process id and command line are in the message)."""


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``<parent>/.<name>.lock``."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}.lock"


class FolderLock:
    """Hold an exclusive lock on ``folder`` (a context manager); refuse at once if another process holds it.

    Args:
        folder: the folder to write (it need not exist; its parent is created).
        what: how to name the folder in messages (``"--out 'runs/imdb'"``).

    Raises (on enter):
        FolderLockedError: another process holds the lock, naming it and its command line.

    >>> with FolderLock("runs/imdb"):  # doctest: +SKIP
    ...     train_and_save()
    """

    def __init__(self, folder: str | os.PathLike[str], *, what: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self.what = what or repr(str(folder))
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (see the class)."""
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # retried only if the holder removed the file between our open and our lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderLockedError(
                    f"{self.what} is being written by another run ({holder}); wait for it to finish or "
                    "choose another folder"
                ) from None
            except OSError:
                os.close(fd)  # a file system without locks: go on unlocked, as before
                return
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                _write_holder(fd)
                return
            os.close(fd)
        raise FolderLockedError(f"{self.what}: its lock file {self.path} keeps being replaced; another run is "
                                "starting or ending there")

    def release(self) -> None:
        """Remove the lock file and release the lock (removing first: see the module docstring)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    command = " ".join(sys.argv)[:500]
    text = f"process {os.getpid()}, started {started}: {command}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8", "backslashreplace"), 0)
    except OSError:
        pass  # the message loses its detail, the lock holds


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 1000, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not yet said who it is"


__all__ = ["FolderLock", "FolderLockedError", "lock_path"]

"""One writer at a time: a thread lock inside the process, an ``fcntl`` lock on the
database's ``LOCK`` file across processes.

The process holding the write lock writes its pid into ``LOCK``, so a second process
that asks to write gets :class:`LockedError` naming the holder (or waits up to a
timeout). ``fcntl`` locks belong to a process, not a descriptor, so the same
database may not be opened twice for writing inside one process either; that is
refused with the same error.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ..errors import LockedError
from ..storage.files import File, FileSystem

LOCK_NAME = "LOCK"
_open_for_write: set[str] = set()
_open_for_write_guard = threading.Lock()


class ProcessWriteLock:
    """The cross-process write lock of one database directory."""

    def __init__(self, fs: FileSystem, directory: Path, timeout: float) -> None:
        self._key = str(directory.resolve())
        with _open_for_write_guard:
            if self._key in _open_for_write:
                raise LockedError(f"{directory} is already open for writing in this process "
                                  f"(pid {os.getpid()})")
            _open_for_write.add(self._key)
        try:
            self._file = self._acquire(fs, directory / LOCK_NAME, timeout)
        except BaseException:
            with _open_for_write_guard:
                _open_for_write.discard(self._key)
            raise

    @staticmethod
    def _acquire(fs: FileSystem, path: Path, timeout: float) -> File:
        file = fs.open(path, create=True)
        deadline = time.monotonic() + timeout
        while not file.try_lock(exclusive=True):
            if time.monotonic() >= deadline:
                holder = file.pread(32, 0).decode("ascii", "replace").strip("\0 \n")
                file.close()
                raise LockedError(f"{path.parent} is locked for writing by process "
                                  f"{holder or 'unknown'}; open it with readonly=True, or "
                                  "wait for that process to close it")
            time.sleep(0.01)
        file.truncate(0)
        file.pwrite(f"{os.getpid()}\n".encode(), 0)
        return file

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._file is None:
            return
        try:
            self._file.truncate(0)
            self._file.unlock()
        finally:
            self._file.close()
            self._file = None  # type: ignore[assignment]
            with _open_for_write_guard:
                _open_for_write.discard(self._key)

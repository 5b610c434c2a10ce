"""One writer at a time: a thread lock inside the process, an ``fcntl`` lock on the
first bytes of the database's ``LOCK`` file across processes.

The process holding the write lock writes its pid into ``LOCK``, so a second process
that asks to write gets :class:`LockedError` naming the holder (or waits up to a
timeout). It also publishes there the LSN of the last commit readers may see, for
reader processes (``docs/FORMAT.md`` section 5).

``fcntl`` locks belong to a process, not a descriptor, so the same database may not
be opened twice for writing inside one process either; that is refused with the same
error.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

from ..errors import LockedError
from ..storage.files import File, FileSystem

LOCK_NAME = "LOCK"
WRITER_RANGE = (0, 32)
"""Byte range of ``LOCK`` the writer locks: its pid, in ASCII."""
PUBLISHED_LSN_OFFSET = 32
"""Where the writer publishes the LSN of the newest commit readers may see (u64)."""
ALL_WRITTEN_OFFSET = 40
"""A byte: 1 when everything the writer has written to the WAL is published (modes
``normal`` and ``off`` acknowledge at write), so readers need no LSN from it."""
_LSN = struct.Struct("<Q")
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
        while not file.try_lock(True, *WRITER_RANGE):
            if time.monotonic() >= deadline:
                holder = file.pread(32, 0).decode("ascii", "replace").strip("\0 \n")
                file.close()
                raise LockedError(f"{path.parent} is locked for writing by process "
                                  f"{holder or 'unknown'}; open it with readonly=True, or "
                                  "wait for that process to close it")
            time.sleep(0.01)
        try:
            file.pwrite(f"{os.getpid()}\n".encode().ljust(WRITER_RANGE[1], b"\0"), 0)
        except BaseException:
            file.close()  # closing drops the lock with the descriptor
            raise
        return file

    def publish_written(self, all_written: bool) -> None:
        """Say whether every WAL byte written is published (see ALL_WRITTEN_OFFSET)."""
        self._file.pwrite(bytes([1 if all_written else 0]), ALL_WRITTEN_OFFSET)

    def publish_lsn(self, lsn: int) -> None:
        """Let reader processes apply commits up to ``lsn``."""
        self._file.pwrite(_LSN.pack(lsn), PUBLISHED_LSN_OFFSET)

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._file is None:
            return
        try:
            self._file.pwrite(bytes(ALL_WRITTEN_OFFSET + 1), 0)
            self._file.unlock(*WRITER_RANGE)
        finally:
            self._file.close()
            self._file = None  # type: ignore[assignment]
            with _open_for_write_guard:
                _open_for_write.discard(self._key)

"""The file layer: every OS file operation of the engine, behind one small interface.

Like LevelDB's ``Env``: the engine never calls ``os`` for file I/O directly. It asks a
:class:`FileSystem` for :class:`File` objects and uses their methods, so tests can
swap in a fault-injecting file system (``colibri_mm.storage.faults``) that fails the
Nth write or fsync, or simulates a power cut by dropping what was never synced.

:class:`FileSystem` itself is the real one. Writes are explicit ``pwrite``/``write``
calls; nothing is ever written through a memory map (maps are read-only).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy.typing as npt

BytesLike = bytes | bytearray | memoryview | npt.NDArray[Any]
"""What writes accept: anything contiguous exposing the buffer protocol."""


_FLOCK = struct.Struct("hh4xqqi4x")
"""Linux ``struct flock``: type, whence, start, length, pid (0 for OFD locks)."""


def _flock(kind: int, start: int, length: int) -> bytes:
    return _FLOCK.pack(kind, os.SEEK_SET, start, length, 0)


class File:
    """An open file of the real file system (a thin wrapper over a descriptor)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def fileno(self) -> int:
        """The OS descriptor (for ``fcntl`` locking only: I/O goes through methods)."""
        return self._fd

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at end of file)."""
        chunks = []
        while size > 0:
            chunk = os.pread(self._fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def pwrite(self, data: BytesLike, offset: int) -> None:
        """Write all of ``data`` at ``offset``."""
        view = memoryview(data).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def sync(self) -> None:
        """``fsync``: data and metadata reach stable storage."""
        os.fsync(self._fd)

    def datasync(self) -> None:
        """``fdatasync``: data (and the size needed to read it) reach stable storage."""
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        """Set the file's size (``ftruncate``)."""
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        """Current size in bytes."""
        return os.fstat(self._fd).st_size

    def map_readonly(self, length: int, offset: int = 0) -> mmap.mmap:
        """A read-only shared mapping of ``length`` bytes at ``offset`` (page aligned)."""
        return mmap.mmap(self._fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ,
                         offset=offset)

    def try_lock(self, exclusive: bool = True, start: int = 0, length: int = 0) -> bool:
        """Lock ``length`` bytes from ``start`` (0: to the end and beyond) without
        waiting; False if another holder has a conflicting lock.

        These are open-file-description locks (``F_OFD_SETLK``): they belong to this
        open file, not to the process, so closing another descriptor of the same file
        does not drop them, and two opens in one process conflict like two processes.
        """
        kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
        try:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _flock(kind, start, length))
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        return True

    def lock_held(self, start: int = 0, length: int = 0) -> bool:
        """Whether another holder has any lock on the range (tested without taking one,
        so the test never gets in a locker's way)."""
        probe = _flock(fcntl.F_WRLCK, start, length)
        answer = fcntl.fcntl(self._fd, fcntl.F_OFD_GETLK, probe)
        return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)

    def unlock(self, start: int = 0, length: int = 0) -> None:
        """Release a lock taken with :meth:`try_lock`."""
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, start, length))

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileSystem:
    """The real file system. Subclasses override these methods to inject faults."""

    def open(self, path: Path, *, create: bool = False, exclusive: bool = False,
             writable: bool = True) -> File:
        """Open ``path``; ``create`` makes it if missing, ``exclusive`` fails if it exists."""
        flags = os.O_RDWR if writable else os.O_RDONLY
        if create:
            flags |= os.O_CREAT
        if exclusive:
            flags |= os.O_EXCL
        return File(path, os.open(path, flags | os.O_CLOEXEC, 0o644))

    def sync_dir(self, path: Path) -> None:
        """``fsync`` a directory, so entries created or renamed in it are durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, src: Path, dst: Path) -> None:
        """Atomically rename ``src`` to ``dst`` (replacing it)."""
        os.replace(src, dst)

    def remove(self, path: Path) -> None:
        """Delete a file."""
        os.unlink(path)

    def remove_dir(self, path: Path) -> None:
        """Delete an empty directory."""
        os.rmdir(path)

    def mkdir(self, path: Path) -> None:
        """Create a directory (and missing parents)."""
        path.mkdir(parents=True, exist_ok=True)

    def exists(self, path: Path) -> bool:
        """Whether ``path`` exists."""
        return path.exists()

    def listdir(self, path: Path) -> list[str]:
        """Names in a directory, sorted."""
        return sorted(os.listdir(path))

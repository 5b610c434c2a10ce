"""The reader table: which checkpoints reader processes are still reading.

It lives in the ``LOCK`` file from byte :data:`SLOTS_OFFSET`: :data:`SLOTS` slots of
:data:`SLOT_SIZE` bytes, each ``u64 pid, u64 checkpoint_id`` (little-endian). A
reader process claims a free slot by taking an ``fcntl`` lock on its bytes and holds
that lock while it is open, so a slot whose lock nobody holds belongs to a dead
reader and is reclaimed (LMDB's reader table, with the kernel's lock bookkeeping
telling the dead from the living). The writer reuses pages and deletes WAL segments
only past the oldest checkpoint a live reader announces. Readers also learn from
this file how far they may read the WAL: the writer publishes the LSN of its last
published commit next to its pid.
"""

from __future__ import annotations

import os
import struct
import weakref
from pathlib import Path

from ..errors import LockedError
from ..storage.files import File, FileSystem
from .writer_lock import ALL_WRITTEN_OFFSET, LOCK_NAME, PUBLISHED_LSN_OFFSET, WRITER_RANGE

SLOTS_OFFSET = 4096
SLOT_SIZE = 64
SLOTS = 64
_SLOT = struct.Struct("<QQ")
_LSN = struct.Struct("<Q")


class ReaderTable:
    """The reader slots of one database's ``LOCK`` file."""

    def __init__(self, fs: FileSystem, directory: Path) -> None:
        self._file: File = fs.open(directory / LOCK_NAME, create=True)
        self._slot: int | None = None

    # -- the reader's side -----------------------------------------------------------

    def claim(self, checkpoint_id: int) -> None:
        """Take a free slot, announcing ``checkpoint_id`` (0 protects everything)."""
        for slot in range(SLOTS):
            if self._file.try_lock(True, SLOTS_OFFSET + slot * SLOT_SIZE, SLOT_SIZE):
                self._slot = slot
                self.announce(checkpoint_id)
                return
        raise LockedError(f"all {SLOTS} reader slots of {self._file.path} are taken by live "
                          "reader processes")

    def announce(self, checkpoint_id: int) -> None:
        """Say that this process may read checkpoint ``checkpoint_id`` and newer."""
        assert self._slot is not None
        self._file.pwrite(_SLOT.pack(os.getpid(), checkpoint_id),
                          SLOTS_OFFSET + self._slot * SLOT_SIZE)

    def published_lsn(self) -> int | None:
        """LSN up to which the live writer has published commits; None: no limit (no
        writer, or one whose every written commit is published)."""
        if not self._file.lock_held(*WRITER_RANGE):
            return None
        data = self._file.pread(_LSN.size + 1, PUBLISHED_LSN_OFFSET)
        if len(data) < _LSN.size + 1:
            return 0
        if data[ALL_WRITTEN_OFFSET - PUBLISHED_LSN_OFFSET]:
            return None
        return int(_LSN.unpack_from(data)[0])

    # -- the writer's side -------------------------------------------------------------

    def oldest_checkpoint(self) -> int | None:
        """Oldest checkpoint a live reader process announces (None: no reader).

        Slots of dead readers are cleared on the way.
        """
        return min((checkpoint_id for _, checkpoint_id in self._live_slots()), default=None)

    def other_readers(self) -> list[int]:
        """Pids of the live reader processes other than this one (slots of dead
        readers are cleared on the way)."""
        return sorted({pid for pid, _ in self._live_slots() if pid != os.getpid()})

    def _live_slots(self) -> list[tuple[int, int]]:
        """``(pid, checkpoint_id)`` of every slot a live reader holds, this process's
        included (its own fcntl locks do not keep it from locking their bytes)."""
        live = []
        data = self._file.pread(SLOTS * SLOT_SIZE, SLOTS_OFFSET).ljust(SLOTS * SLOT_SIZE, b"\0")
        for slot in range(SLOTS):
            pid, checkpoint_id = _SLOT.unpack_from(data, slot * SLOT_SIZE)
            if pid == 0:
                continue
            start = SLOTS_OFFSET + slot * SLOT_SIZE
            if pid != os.getpid() and self._file.try_lock(True, start, SLOT_SIZE):
                self._file.pwrite(bytes(SLOT_SIZE), start)  # a dead reader's slot
                self._file.unlock(start, SLOT_SIZE)
                continue
            live.append((pid, checkpoint_id))
        return live

    def close(self) -> None:
        """Free this process's slot (if any) and close the file."""
        try:
            if self._slot is not None:
                start = SLOTS_OFFSET + self._slot * SLOT_SIZE
                self._file.pwrite(bytes(SLOT_SIZE), start)
                self._file.unlock(start, SLOT_SIZE)
                self._slot = None
        finally:
            self._file.close()


class SlotHolder:
    """A reader slot claimed for whoever holds this object (see :func:`hold_slot`)."""


def hold_slot(fs: FileSystem, directory: Path, checkpoint_id: int) -> SlotHolder:
    """Claim a reader slot announcing ``checkpoint_id`` for as long as the returned
    object lives: zero-copy data that outlives its database keeps the pages it reads
    from reuse by any later writer this way."""
    table = ReaderTable(fs, directory)
    table.claim(checkpoint_id)
    holder = SlotHolder()
    weakref.finalize(holder, table.close)
    return holder

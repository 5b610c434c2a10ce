"""Following the WAL of a database that another process is writing.

A reader process applies, at each refresh, the transactions committed since its last
one, up to the LSN the writer has published (commits past it may still be taken back
by a crash, DESIGN.md principle 4). It never repairs anything: a torn record at the
tail is simply a write in progress, read again next time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CorruptionError
from ..kernels import walcodec
from ..kernels.walcodec import DecodeStatus
from ..storage.files import FileSystem
from ..txn.replay import COMMIT, TransactionAssembler
from .segment import (
    RECORDS_OFFSET,
    SegmentHeader,
    read_header,
    segment_holding,
    segment_numbers,
    segment_path,
)

RELISTS = 4
"""Times a poll lists the WAL directory again when segments vanish under it."""


class WalFollower:
    """Reads committed transactions from the WAL tail, incrementally."""

    def __init__(self, fs: FileSystem, wal_dir: Path, after_lsn: int) -> None:
        self._fs = fs
        self._wal_dir = wal_dir
        self._after_lsn = after_lsn
        """Every transaction with a COMMIT at or below this LSN has been applied."""
        self._segment: int | None = None
        self._offset = RECORDS_OFFSET
        self._block_size = walcodec.BLOCK_SIZE

    def _start(self) -> bool:
        """Find the segment holding the first LSN after ``after_lsn``."""
        numbers, holding = self._locate()
        if holding is None:
            if numbers and read_header(self._fs, self._wal_dir, numbers[0]) is not None:
                raise CorruptionError(f"the WAL after LSN {self._after_lsn} is gone (the "
                                      "oldest segment starts later)",
                                      path=str(segment_path(self._wal_dir, numbers[0])))
            return False
        index, header = holding
        self._segment, self._offset = numbers[index], RECORDS_OFFSET
        self._block_size = header.block_size
        return True

    def _locate(self) -> tuple[list[int], tuple[int, SegmentHeader] | None]:
        """The segments listed, and which holds the first LSN after ``after_lsn``.

        The writer deletes old segments while this runs (those before the cut of the
        oldest checkpoint a reader announced). A scan that stopped at a segment
        deleted since the listing could name an older one: list again."""
        for _ in range(RELISTS):
            numbers = segment_numbers(self._fs.listdir(self._wal_dir))
            holding = segment_holding(self._fs, self._wal_dir, numbers, self._after_lsn + 1)
            stop = 0 if holding is None else holding[0] + 1
            if stop >= len(numbers) or \
                    self._fs.exists(segment_path(self._wal_dir, numbers[stop])):
                break
        return numbers, holding

    def poll(self, assembler: TransactionAssembler, limit_lsn: int | None) -> None:
        """Feed ``assembler`` every whole transaction after the last one fed whose
        COMMIT LSN is at most ``limit_lsn`` (None: no limit)."""
        if self._segment is None and not self._start():
            return
        relists = 0
        while True:
            assert self._segment is not None
            path = segment_path(self._wal_dir, self._segment)
            try:
                file = self._fs.open(path, writable=False)
            except FileNotFoundError:
                # Deleted by the writer: what comes next may be in a later segment
                # (this one held only what was applied), or gone with it, when a
                # checkpoint this process has not read yet allowed the deletion (then
                # the caller reloads from the new meta).
                relists += 1
                if relists < RELISTS and self._start():
                    continue
                raise CorruptionError("the WAL segment being followed was removed",
                                      path=str(path)) from None
            try:
                data = file.pread(file.size() - self._offset, self._offset)
            finally:
                file.close()
            decoded = walcodec.decode(data, segment=self._segment,
                                      position=self._offset - RECORDS_OFFSET,
                                      block_size=self._block_size)
            # Damage stops the reader where point-in-time recovery would stop (opening
            # reported it); the writer's recovery repairs it, and the reader goes on.
            damaged = decoded.status not in (DecodeStatus.OK, DecodeStatus.UNWRITTEN,
                                             DecodeStatus.TRUNCATED)
            stop = self._last_commit_within(decoded, limit_lsn)
            if stop is not None:
                first = int(np.searchsorted(decoded.lsns, self._after_lsn + 1))
                assembler.feed(decoded, min(first, stop), stop)
                self._after_lsn = int(decoded.lsns[stop - 1])
                end = int(decoded.starts[stop]) if stop < len(decoded) else decoded.end
                self._offset += end
            whole = (stop or 0) == len(decoded) and not damaged and \
                decoded.status != DecodeStatus.TRUNCATED
            following = read_header(self._fs, self._wal_dir, self._segment + 1)
            if whole and following is not None and following.first_lsn == self._after_lsn + 1:
                self._segment += 1
                self._offset = RECORDS_OFFSET
                self._block_size = following.block_size
                continue
            return

    def _last_commit_within(self, decoded: walcodec.DecodedRecords,
                            limit_lsn: int | None) -> int | None:
        """One past the index of the last COMMIT record with LSN <= ``limit_lsn``."""
        commits = np.flatnonzero(decoded.types == COMMIT)
        if limit_lsn is not None:
            commits = commits[decoded.lsns[commits] <= np.uint64(limit_lsn)]
        return int(commits[-1]) + 1 if commits.size else None

"""Reading the WAL back: every record after a given LSN, segment by segment, under one
of three recovery modes (RocksDB's vocabulary).

- ``point_in_time`` (default): stop at the first record that is torn or damaged; what
  follows is dropped and reported. After a crash a torn tail is normal.
- ``absolute``: any damage or torn record is a :class:`CorruptionError` naming the
  file and offset; nothing is dropped silently.
- ``skip_corrupted``: salvage: skip a damaged region to the next block and go on,
  reporting every skipped range.

The reader only splits and validates records; the transaction layer assembles them
into transactions (and drops transactions that lost a record).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CorruptionError
from ..kernels import walcodec
from ..kernels.walcodec import DecodedRecords, DecodeStatus
from ..storage.checksums import CRC32C, FormatChecksum
from ..storage.files import FileSystem
from .segment import (
    RECORDS_OFFSET,
    SegmentHeader,
    segment_holding,
    segment_numbers,
    segment_path,
)
from .writer import WalPosition

RECOVERY_MODES = ("point_in_time", "absolute", "skip_corrupted")


@dataclass
class ReplayReport:
    """What a WAL replay read, applied and dropped."""

    mode: str
    segments: int = 0
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dropped: list[str] = field(default_factory=list)
    """One line per region that was not replayed: file, offset, bytes and why."""


@dataclass
class _SegmentScan:
    """Result of reading one segment."""

    header: SegmentHeader | None
    end: int
    """File offset just past the last good record."""
    stopped: bool
    """True when a torn or damaged region ended replay (point-in-time)."""


class WalReader:
    """Replays the WAL of one database directory (see the module docstring)."""

    def __init__(self, fs: FileSystem, wal_dir: Path, database_id: bytes, mode: str,
                 checksum: FormatChecksum = CRC32C) -> None:
        if mode not in RECOVERY_MODES:
            raise ValueError(f"recovery mode must be one of {RECOVERY_MODES}, got {mode!r}")
        self._fs = fs
        self._wal_dir = wal_dir
        self._database_id = database_id
        self._mode = mode
        self._checksum = checksum
        """The format's checksum: segment headers and fragments are checked with it."""
        self._next_lsn = 0

    def replay(self, after_lsn: int, apply: Callable[[DecodedRecords, int], None],
               repair: bool) -> tuple[ReplayReport, WalPosition | None]:
        """Feed every record with LSN > ``after_lsn`` to ``apply``, in LSN order.

        ``apply(records, first)`` receives a batch of decoded records and the index of
        the first one to apply (the ones before it are at or below ``after_lsn``).

        Returns the report and where a writer should append (None if the WAL has no
        segment). With ``repair`` (a writable open), a torn or dropped tail is cut off
        so new records follow the last good one.
        """
        started = time.perf_counter()
        report = ReplayReport(self._mode)
        numbers = self._needed_segments(segment_numbers(self._fs.listdir(self._wal_dir)),
                                        after_lsn, repair)
        position: WalPosition | None = None
        expected_lsn: int | None = None
        for index, number in enumerate(numbers):
            path = segment_path(self._wal_dir, number)
            last = index == len(numbers) - 1
            scan = self._scan_segment(path, number, expected_lsn, after_lsn, apply, report,
                                      last)
            if scan.header is None:
                # A segment whose creation was torn by a crash: nothing was ever in it.
                if repair:
                    self._fs.remove(path)
                break
            report.segments += 1
            expected_lsn = self._next_lsn
            position = WalPosition(number, scan.end, expected_lsn)
            if scan.stopped:
                later = numbers[index + 1 :]
                for other in later:
                    other_path = segment_path(self._wal_dir, other)
                    other_file = self._fs.open(other_path, writable=False)
                    try:
                        report.dropped.append(
                            f"{other_path}: whole segment ({other_file.size()} bytes) "
                            "follows a damaged record")
                    finally:
                        other_file.close()
                    if repair:
                        self._fs.rename(other_path, other_path.with_suffix(".wal.dropped"))
                if repair:
                    self._cut(path, scan.end)
                break
            if last and repair:
                self._cut(path, scan.end)
        report.seconds = time.perf_counter() - started
        return report, position

    def _needed_segments(self, numbers: list[int], after_lsn: int, repair: bool) -> list[int]:
        """Drop segments wholly at or below ``after_lsn``: those a checkpoint made
        obsolete (normally deleted; one may come back when a power cut undoes part of
        the deletions). The segment that holds LSN ``after_lsn + 1`` is the first kept."""
        holding = segment_holding(self._fs, self._wal_dir, numbers, after_lsn + 1,
                                  self._checksum)
        start = holding[0] if holding is not None else 0
        if repair:
            for number in numbers[:start]:
                self._fs.remove(segment_path(self._wal_dir, number))
        return numbers[start:]

    def _cut(self, path: Path, end: int) -> None:
        file = self._fs.open(path)
        try:
            if file.size() > end:
                file.truncate(end)
                file.datasync()
        finally:
            file.close()

    def _scan_segment(self, path: Path, number: int, expected_lsn: int | None,
                      after_lsn: int, apply: Callable[[DecodedRecords, int], None],
                      report: ReplayReport, last: bool) -> _SegmentScan:
        file = self._fs.open(path, writable=False)
        try:
            data = file.pread(file.size(), 0)
        finally:
            file.close()
        try:
            header = SegmentHeader.decode(data[:RECORDS_OFFSET], path, self._checksum)
        except CorruptionError:
            if last and self._mode != "absolute" and len(data) <= RECORDS_OFFSET:
                report.dropped.append(f"{path}: segment header torn while it was created "
                                      f"({len(data)} bytes)")
                return _SegmentScan(None, 0, True)
            raise
        self._check_header(header, number, expected_lsn, path)
        if expected_lsn is None and header.first_lsn > after_lsn + 1 and \
                self._mode != "skip_corrupted":
            raise CorruptionError(
                f"WAL records {after_lsn + 1}..{header.first_lsn - 1} are missing: the WAL "
                f"starts at LSN {header.first_lsn} but the checkpoint in use ends at LSN "
                f"{after_lsn} (a damaged newest meta slot?)", path=str(path), offset=24)
        self._next_lsn = header.first_lsn
        body = memoryview(data)[RECORDS_OFFSET:]
        position = 0
        stopped = False
        while True:
            decoded = walcodec.decode(body[position:], segment=number, position=position,
                                      block_size=header.block_size,
                                      checksum=self._checksum.name)
            self._deliver(decoded, after_lsn, apply, report, path, position)
            end = position + decoded.end
            status = decoded.status
            if status in (DecodeStatus.OK, DecodeStatus.UNWRITTEN):
                break
            bad_at = RECORDS_OFFSET + position + decoded.error_offset
            reason = f"{status.name.lower()} record at offset {bad_at}"
            if self._mode == "absolute":
                raise CorruptionError(f"WAL {reason}", path=str(path), offset=bad_at)
            if self._mode == "point_in_time":
                report.dropped.append(f"{path}: {len(body) - end} bytes from offset "
                                      f"{RECORDS_OFFSET + end} dropped ({reason})")
                stopped = True
                break
            block = header.block_size
            resume = ((position + decoded.error_offset) // block + 1) * block
            report.dropped.append(f"{path}: skipped {min(resume, len(body)) - end} bytes "
                                  f"from offset {RECORDS_OFFSET + end} ({reason})")
            resume = _past_orphan_fragments(body, resume, block)
            if resume >= len(body):
                break
            position = resume
        return _SegmentScan(header, RECORDS_OFFSET + end, stopped)

    def _check_header(self, header: SegmentHeader, number: int, expected_lsn: int | None,
                      path: Path) -> None:
        if header.segment != number:
            raise CorruptionError(f"WAL segment file holds segment {header.segment}, "
                                  f"its name says {number}", path=str(path), offset=16)
        if header.database_id != self._database_id:
            raise CorruptionError("WAL segment belongs to another database",
                                  path=str(path), offset=32)
        if expected_lsn is not None and header.first_lsn != expected_lsn and \
                self._mode != "skip_corrupted":
            raise CorruptionError(f"WAL segment starts at LSN {header.first_lsn}, expected "
                                  f"{expected_lsn} (a segment is missing)", path=str(path),
                                  offset=24)

    def _deliver(self, decoded: DecodedRecords, after_lsn: int,
                 apply: Callable[[DecodedRecords, int], None], report: ReplayReport,
                 path: Path, position: int) -> None:
        if len(decoded) == 0:
            return
        lsns = decoded.lsns
        first = int(lsns[0])
        if self._mode != "skip_corrupted" and first != self._next_lsn:
            raise CorruptionError(f"WAL record has LSN {first}, expected {self._next_lsn}",
                                  path=str(path), offset=RECORDS_OFFSET + position)
        self._next_lsn = int(lsns[-1]) + 1
        report.records += len(decoded)
        report.bytes += int(decoded.offsets[-1])
        if int(lsns[-1]) > after_lsn:
            apply(decoded, max(0, after_lsn + 1 - first))


def _past_orphan_fragments(body: memoryview, position: int, block_size: int) -> int:
    """Skip MIDDLE and LAST fragments at ``position`` (the rest of a record whose start
    was lost), so salvage resumes at the next record that starts whole."""
    while len(body) - position >= walcodec.HEADER_SIZE:
        kind = body[position + 6]
        if kind not in (walcodec.MIDDLE, walcodec.LAST):
            break
        length = int.from_bytes(body[position + 4 : position + 6], "little")
        left = block_size - position % block_size
        if length > left - walcodec.HEADER_SIZE:
            break
        position += walcodec.HEADER_SIZE + length
        if block_size - position % block_size < walcodec.HEADER_SIZE:
            position += block_size - position % block_size
    return position

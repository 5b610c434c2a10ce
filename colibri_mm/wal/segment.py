"""WAL segment files: naming and the 512-byte segment header.

A segment is ``wal/<segment number as 16 hex digits>.wal``. It starts with a header
(layout in ``docs/FORMAT.md`` section 3); framed records (``colibri_mm.kernels.walcodec``)
follow from byte :data:`RECORDS_OFFSET`, with block positions counted from there.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptionError
from ..storage.checksums import CRC32C, FormatChecksum
from ..storage.files import FileSystem

MAGIC = b"COLIWAL\x00"
FORMAT_VERSION = 1
RECORDS_OFFSET = 512
"""Byte offset of the first record in a segment file."""

_HEADER = struct.Struct("<8sIIQQ16s")
_CRC = struct.Struct("<I")
_NAME = re.compile(r"^([0-9a-f]{16})\.wal$")


@dataclass(frozen=True)
class SegmentHeader:
    """What a segment says about itself."""

    segment: int
    """Segment number: part of every record's CRC in the segment."""
    first_lsn: int
    """LSN of the first record written to the segment."""
    block_size: int
    database_id: bytes
    """16 bytes identifying the database, so a foreign segment is never replayed."""

    def encode(self, checksum: FormatChecksum = CRC32C) -> bytes:
        """The :data:`RECORDS_OFFSET`-byte header region (``checksum``: the format's)."""
        body = _HEADER.pack(MAGIC, FORMAT_VERSION, self.block_size, self.segment,
                            self.first_lsn, self.database_id)
        head = body + _CRC.pack(checksum.masked(body))
        return head + bytes(RECORDS_OFFSET - len(head))

    @classmethod
    def decode(cls, data: bytes, path: Path,
               checksum: FormatChecksum = CRC32C) -> SegmentHeader:
        """Parse and verify a header with the format's ``checksum``;
        :class:`CorruptionError` names the file if bad."""
        size = _HEADER.size + _CRC.size
        if len(data) < size:
            raise CorruptionError("WAL segment header is truncated", path=str(path), offset=0)
        body = data[: _HEADER.size]
        (stored,) = _CRC.unpack_from(data, _HEADER.size)
        if stored != checksum.masked(body):
            raise CorruptionError("WAL segment header fails its checksum", path=str(path),
                                  offset=0)
        magic, version, block_size, segment, first_lsn, database_id = _HEADER.unpack(body)
        if magic != MAGIC:
            raise CorruptionError("not a WAL segment (bad magic)", path=str(path), offset=0)
        if version != FORMAT_VERSION:
            raise CorruptionError(f"unknown WAL segment format version {version}",
                                  path=str(path), offset=8)
        return cls(segment, first_lsn, block_size, database_id)


def segment_path(wal_dir: Path, segment: int) -> Path:
    """File name of segment number ``segment``."""
    return wal_dir / f"{segment:016x}.wal"


def segment_numbers(names: list[str]) -> list[int]:
    """Segment numbers among directory entry ``names``, ascending."""
    return sorted(int(m.group(1), 16) for m in map(_NAME.match, names) if m)


def read_header(fs: FileSystem, wal_dir: Path, segment: int,
                checksum: FormatChecksum = CRC32C) -> SegmentHeader | None:
    """The header of segment ``segment``; None if the file is gone or its header is
    not valid (torn by a crash, or being created right now)."""
    path = segment_path(wal_dir, segment)
    try:
        file = fs.open(path, writable=False)
    except FileNotFoundError:
        return None
    try:
        head = file.pread(RECORDS_OFFSET, 0)
    finally:
        file.close()
    try:
        return SegmentHeader.decode(head, path, checksum)
    except CorruptionError:
        return None


def segment_holding(fs: FileSystem, wal_dir: Path, numbers: list[int], lsn: int,
                    checksum: FormatChecksum = CRC32C) -> tuple[int, SegmentHeader] | None:
    """(index in ``numbers``, header) of the segment where LSN ``lsn`` is or will be:
    the last one, in order, whose first LSN is at most ``lsn`` (the scan stops at a
    header that is unreadable). None if even the first starts after ``lsn``."""
    found = None
    for index, number in enumerate(numbers):
        header = read_header(fs, wal_dir, number, checksum)
        if header is None or header.first_lsn > lsn:
            break
        found = (index, header)
    return found

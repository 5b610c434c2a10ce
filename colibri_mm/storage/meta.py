"""The meta file: two checksummed slots (LMDB's double meta) saying which checkpoint is
current, in which format, with which page size.

The slot with the highest checkpoint id whose CRC checks wins; a checkpoint writes
the *other* slot and syncs, so a torn meta write leaves the previous slot intact.
A slot also says which format the database is in: a 1.x slot has a read and a write
version and a CRC-32C; a 0.9 slot has one version field (bytes 8..11) and a zlib
CRC-32 (:mod:`.checksums`). Byte layout: ``docs/FORMAT.md`` section 4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..errors import CorruptionError, FormatVersionError
from .checksums import CRC32C, FORMAT_1_0, ZLIB_CRC32, checksum_of
from .files import FileSystem

META_NAME = "colibri.meta"
MAGIC = b"COLIMETA"
SLOT_OFFSETS = (0, 4096)
META_FILE_SIZE = 8192
READ_VERSION = FORMAT_1_0
"""Newest format this engine can read."""
WRITE_VERSION = FORMAT_1_0
"""Newest format this engine can write."""

_SLOT = struct.Struct("<8sHHI16sQQQQQHHHH")
_CRC = struct.Struct("<I")


def format_version_text(version: int) -> str:
    """``0x0100`` -> ``"1.0"``."""
    return f"{version >> 8}.{version & 0xFF}"


def _engine_version() -> tuple[int, int, int]:
    parts = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in
             __version__.split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


@dataclass(frozen=True)
class Meta:
    """One meta slot."""

    read_version: int
    write_version: int
    page_size: int
    database_id: bytes
    checkpoint_id: int
    checkpoint_lsn: int
    """Every WAL record with an LSN at or below this is in the data file."""
    checkpoint_csn: int
    """Highest commit sequence number included in the checkpoint."""
    catalog_root: int
    free_list_root: int

    def encode(self) -> bytes:
        """The slot's bytes, CRC included, in the layout of its format (a format
        before 1.0 has one version field, where 1.x has the read then the write
        version, and its own checksum)."""
        versions = (self.read_version, self.write_version)
        if self.write_version < FORMAT_1_0:
            versions = (self.write_version & 0xFFFF, self.write_version >> 16)
        body = _SLOT.pack(MAGIC, *versions, self.page_size,
                          self.database_id, self.checkpoint_id, self.checkpoint_lsn,
                          self.checkpoint_csn, self.catalog_root, self.free_list_root,
                          *_engine_version(), 0)
        return body + _CRC.pack(checksum_of(self.write_version).masked(body))

    @classmethod
    def decode(cls, data: bytes) -> Meta | None:
        """The slot in ``data``, or None if it is empty, torn or fails its CRC.

        A slot whose CRC-32C checks is a 1.x slot; one whose zlib CRC-32 checks and
        whose 32-bit version field is below 1.0 is a 0.9 slot (read and write
        version both that field).
        """
        size = _SLOT.size + _CRC.size
        if len(data) < size:
            return None
        body = data[: _SLOT.size]
        (magic, read_version, write_version, page_size, database_id, checkpoint_id,
         checkpoint_lsn, checkpoint_csn, catalog_root, free_list_root,
         *_writer) = _SLOT.unpack(body)
        if magic != MAGIC:
            return None
        (stored,) = _CRC.unpack_from(data, _SLOT.size)
        if stored != CRC32C.masked(body):
            single_version = read_version | write_version << 16
            if single_version >= FORMAT_1_0 or stored != ZLIB_CRC32.masked(body):
                return None
            read_version = write_version = single_version
        return cls(read_version, write_version, page_size, database_id, checkpoint_id,
                   checkpoint_lsn, checkpoint_csn, catalog_root, free_list_root)


def create_meta(fs: FileSystem, directory: Path, meta: Meta) -> None:
    """Write a new meta file (slot 0 holds ``meta``, slot 1 is empty) and sync it."""
    file = fs.open(directory / META_NAME, create=True, exclusive=True)
    try:
        image = bytearray(META_FILE_SIZE)
        encoded = meta.encode()
        image[: len(encoded)] = encoded
        file.pwrite(bytes(image), 0)
        file.sync()
    finally:
        file.close()
    fs.sync_dir(directory)


def read_meta(fs: FileSystem, directory: Path) -> tuple[Meta, int]:
    """The current meta and the index of its slot.

    Raises :class:`CorruptionError` if neither slot is valid and
    :class:`FormatVersionError` if the read version is newer than this engine reads.
    """
    path = directory / META_NAME
    file = fs.open(path, writable=False)
    try:
        data = file.pread(META_FILE_SIZE, 0)
    finally:
        file.close()
    slots = [Meta.decode(data[o : o + 512]) for o in SLOT_OFFSETS]
    valid = [(m.checkpoint_id, i, m) for i, m in enumerate(slots) if m is not None]
    if not valid:
        raise CorruptionError("neither meta slot is valid (both fail their checksum)",
                              path=str(path), offset=0)
    _, index, meta = max(valid)
    if meta.read_version > READ_VERSION:
        raise FormatVersionError(
            f"{directory} has format {format_version_text(meta.read_version)}; this "
            f"engine reads up to {format_version_text(READ_VERSION)}: upgrade colibri-mm")
    return meta, index


def write_meta_slot(fs: FileSystem, directory: Path, slot: int, meta: Meta) -> None:
    """Overwrite slot ``slot`` with ``meta`` and sync: the checkpoint's commit point."""
    file = fs.open(directory / META_NAME)
    try:
        file.pwrite(meta.encode(), SLOT_OFFSETS[slot])
        file.sync()
    finally:
        file.close()

"""Plain reference for :mod:`.walcodec`: the same framing written with ``struct`` and
the ``crc32c`` package (or ``zlib.crc32`` for format 0.9's checksum), one fragment at a
time, straight from ``docs/FORMAT.md``."""

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import crc32c as crc32c_package

HEADER = struct.Struct("<IHBBQ")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
OK, UNWRITTEN, TRUNCATED, CHECKSUM, LENGTH, FRAGMENT = range(6)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


CRC_FUNCTIONS: dict[str, Callable[[bytes, int], int]] = {
    "crc32c": crc32c_package.crc32c, "crc32": zlib.crc32}


def _fragment_crc(segment: int, header_tail: bytes, payload: bytes, checksum: str) -> int:
    crc_of = CRC_FUNCTIONS[checksum]
    crc = crc_of(struct.pack("<Q", segment), 0)
    crc = crc_of(header_tail, crc)
    return _mask(crc_of(payload, crc))


def encode(records: list[tuple[int, int, bytes]], segment: int, position: int,
           block_size: int, checksum: str = "crc32c") -> bytes:
    """Frame ``(type, lsn, payload)`` records for ``position`` of ``segment``."""
    out = bytearray()
    pos = position
    for rtype, lsn, payload in records:
        rest = payload
        first = True
        while True:
            left = block_size - pos % block_size
            if left < HEADER.size:
                out += bytes(left)
                pos += left
                continue
            piece, rest = rest[: left - HEADER.size], rest[left - HEADER.size :]
            last = not rest
            kind = (FULL if last else FIRST) if first else (LAST if last else MIDDLE)
            tail = HEADER.pack(0, len(piece), kind, rtype, lsn)[4:]
            out += struct.pack("<I", _fragment_crc(segment, tail, piece, checksum)) + tail + piece
            pos += HEADER.size + len(piece)
            first = False
            if last:
                break
    return bytes(out)


@dataclass
class Decoded:
    """Result of :func:`decode`, in plain Python types."""

    records: list[tuple[int, int, bytes, int]]  # (type, lsn, payload, start)
    end: int
    status: int
    error_offset: int


def decode(buf: bytes, segment: int, position: int, block_size: int,
           checksum: str = "crc32c") -> Decoded:
    """Split ``buf`` into records, stopping at the first bad fragment."""
    records: list[tuple[int, int, bytes, int]] = []
    i, end = 0, 0
    current: tuple[int, int, int] | None = None  # (type, lsn, start)
    parts: list[bytes] = []

    def stop(status: int, offset: int) -> Decoded:
        return Decoded(records, end, status, offset)

    while True:
        if i >= len(buf):
            return stop(TRUNCATED, current[2]) if current else stop(OK, -1)
        left = block_size - (position + i) % block_size
        if left < HEADER.size:
            i += left
            continue
        if len(buf) - i < HEADER.size:
            if current is None and not any(buf[i:]):
                return stop(UNWRITTEN, i)
            return stop(TRUNCATED, current[2] if current else i)
        if not any(buf[i : i + HEADER.size]):
            return stop(TRUNCATED, current[2]) if current else stop(UNWRITTEN, i)
        stored, length, kind, rtype, lsn = HEADER.unpack_from(buf, i)
        if length > left - HEADER.size:
            return stop(LENGTH, i)
        if i + HEADER.size + length > len(buf):
            return stop(TRUNCATED, current[2] if current else i)
        piece = bytes(buf[i + HEADER.size : i + HEADER.size + length])
        if _fragment_crc(segment, bytes(buf[i + 4 : i + HEADER.size]), piece,
                         checksum) != stored:
            return stop(CHECKSUM, i)
        if rtype == 0 or kind not in (FULL, FIRST, MIDDLE, LAST):
            return stop(FRAGMENT, i)
        if kind in (FULL, FIRST):
            if current is not None:
                return stop(FRAGMENT, i)
            current = (rtype, lsn, i)
            parts = []
        elif current is None or (rtype, lsn) != current[:2]:
            return stop(FRAGMENT, i)
        parts.append(piece)
        i += HEADER.size + length
        if kind in (FULL, LAST):
            assert current is not None
            records.append((current[0], current[1], b"".join(parts), current[2]))
            current = None
            end = i

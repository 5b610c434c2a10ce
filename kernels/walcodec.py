"""Write-ahead-log record framing: batched encoding and validating decoding.

A WAL segment is a sequence of ``block_size``-byte blocks (LevelDB's log format, with
an LSN and the segment number added). A record is stored as one fragment, or split
into FIRST, MIDDLE..., LAST fragments when it crosses block boundaries. Every
fragment has a 16-byte header::

    0  u32  masked CRC-32C of (segment number as u64 LE) + header[4:16] + payload
    4  u16  payload length of this fragment
    6  u8   fragment kind: 1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST
    7  u8   record type (1..255, chosen by the WAL writer; 0 is reserved)
    8  u64  LSN of the record (every fragment of a record carries it)
    16      payload

When fewer than 16 bytes are left in a block they are zero-filled and the next
fragment starts at the next block. All integers are little-endian. Because the
segment number is inside the CRC, bytes left over from a recycled segment fail the
check. ``docs/FORMAT.md`` is the normative description.

:func:`encode` frames a whole batch in one kernel call (sizes, copy, CRCs);
:func:`decode` validates a buffer and returns the records up to the first fragment
that is torn, unwritten or damaged, saying why it stopped.
"""

import enum
import functools
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from crc32c import crc32c as _crc32c_c

from . import crc32 as crc32_kernel
from .buffers import ByteArray, as_uint8
from .checksum import _use_hardware, crc32c, mask, unmask, update
from .jit import kernel

HEADER_SIZE: Final = 16
_MASKED_CRC = struct.Struct("<I")
_TAIL = struct.Struct("<HBBQ")
"""A fragment header after its CRC: length, kind, record type, LSN."""
BLOCK_SIZE: Final = 32768
"""Default block size in bytes."""
MAX_BLOCK_SIZE: Final = 65536
"""Largest block whose fragment length still fits the u16 length field."""

CHECKSUMS: Final = ("crc32c", "crc32")
"""Checksums a fragment may carry: CRC-32C (format 1.x) or zlib's CRC-32 (format 0.9,
read and migrated only)."""
_CRC32C_SOFTWARE: Final = 0
_CRC32C_HARDWARE: Final = 1
_ZLIB_CRC32: Final = 2

FULL: Final = 1
FIRST: Final = 2
MIDDLE: Final = 3
LAST: Final = 4


class DecodeStatus(enum.IntEnum):
    """Why :func:`decode` stopped."""

    OK = 0
    """The buffer ended at a record boundary."""
    UNWRITTEN = 1
    """An all-zero header: the rest of the segment was never written."""
    TRUNCATED = 2
    """The buffer ended inside a header, a payload or a multi-fragment record."""
    CHECKSUM = 3
    """A fragment's CRC does not match its bytes (or belongs to another segment)."""
    LENGTH = 4
    """A fragment's length runs past the end of its block."""
    FRAGMENT = 5
    """An unknown fragment kind or record type, or fragments out of sequence."""


@dataclass(frozen=True)
class DecodedRecords:
    """Records found by :func:`decode`: record i has payload
    ``payload[offsets[i]:offsets[i+1]]``, type ``types[i]``, LSN ``lsns[i]``, and its
    first fragment starts at byte ``starts[i]`` of the decoded buffer."""

    types: npt.NDArray[np.uint8]
    lsns: npt.NDArray[np.uint64]
    offsets: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    payload: ByteArray
    end: int
    """Byte offset just past the last complete record: where valid data ends."""
    status: DecodeStatus
    error_offset: int
    """Offset of the fragment where decoding stopped for a reason other than OK, else -1."""

    def __len__(self) -> int:
        return int(self.types.size)

    def record(self, i: int) -> bytes:
        """Payload of record ``i`` as bytes."""
        return self.payload[self.offsets[i] : self.offsets[i + 1]].tobytes()


@kernel
def _store_le(out: ByteArray, at: int, value: Any, width: int) -> None:
    v = np.uint64(value)
    for k in range(width):
        out[at + k] = np.uint8(v & np.uint64(0xFF))
        v >>= np.uint64(8)


@kernel
def _load_le(buf: ByteArray, at: int, width: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(width - 1, -1, -1):
        v = (v << np.uint64(8)) | np.uint64(buf[at + k])
    return v


@kernel
def _copy(dst: ByteArray, dst_at: int, src: ByteArray, src_at: int, count: int) -> None:
    """``dst[dst_at:dst_at+count] = src[src_at:...]`` as a loop: Numba's slice
    assignment costs about ten times more for record-sized copies."""
    d = np.uint64(dst_at)
    s = np.uint64(src_at)
    for k in range(np.uint64(count)):
        dst[d + k] = src[s + k]


@kernel
def _mask(crc: np.uint32) -> np.uint32:
    c = np.uint64(crc)
    rotated = ((c >> np.uint64(15)) | (c << np.uint64(17))) + np.uint64(0xA282EAD8)
    return np.uint32(rotated & np.uint64(0xFFFFFFFF))


@kernel
def _fragment_crc(seed: np.uint32, buf: ByteArray, start: np.uint64, end: np.uint64,
                  algorithm: int) -> np.uint32:
    """The checksum ``algorithm`` (one of the ``_CRC32C_*``/``_ZLIB_CRC32`` codes) of
    ``buf[start:end]`` continuing from ``seed``."""
    if algorithm == _ZLIB_CRC32:
        return crc32_kernel.update(seed, buf, start, end)
    return update(seed, buf, start, end, algorithm == _CRC32C_HARDWARE)


@kernel
def _encoded_size(offsets: npt.NDArray[np.int64], position: int,
                  block_size: int) -> int:
    pos = position
    for r in range(offsets.size - 1):
        remaining = offsets[r + 1] - offsets[r]
        first = True
        while first or remaining > 0:
            left = block_size - pos % block_size
            if left < HEADER_SIZE:
                pos += left
                continue
            take = min(remaining, left - HEADER_SIZE)
            pos += HEADER_SIZE + take
            remaining -= take
            first = False
    return pos - position


@kernel
def _encode(payload: ByteArray, offsets: npt.NDArray[np.int64],
            types: npt.NDArray[np.uint8], lsns: npt.NDArray[np.uint64], seed: np.uint32,
            position: int, block_size: int, algorithm: int) -> ByteArray:
    out = np.empty(_encoded_size(offsets, position, block_size), np.uint8)
    o = 0
    pos = position
    for r in range(offsets.size - 1):
        start = offsets[r]
        end = offsets[r + 1]
        first = True
        while True:
            left = block_size - pos % block_size
            if left < HEADER_SIZE:
                for k in range(left):
                    out[o + k] = 0
                o += left
                pos += left
                continue
            take = min(end - start, left - HEADER_SIZE)
            last = start + take == end
            if first:
                kind = FULL if last else FIRST
            else:
                kind = LAST if last else MIDDLE
            _store_le(out, o + 4, np.uint64(take), 2)
            out[o + 6] = kind
            out[o + 7] = types[r]
            _store_le(out, o + 8, lsns[r], 8)
            _copy(out, o + HEADER_SIZE, payload, start, take)
            crc = _fragment_crc(seed, out, np.uint64(o + 4), np.uint64(o + HEADER_SIZE + take),
                                algorithm)
            _store_le(out, o, np.uint64(_mask(crc)), 4)
            o += HEADER_SIZE + take
            pos += HEADER_SIZE + take
            start += take
            first = False
            if last:
                break
    return out


@kernel
def _all_zero(buf: ByteArray, start: int, end: int) -> bool:
    for k in range(start, end):
        if buf[k] != 0:
            return False
    return True


@kernel
def _decode(buf: ByteArray, seed: np.uint32, position: int, block_size: int,
            algorithm: int, types: npt.NDArray[np.uint8], lsns: npt.NDArray[np.uint64],
            offsets: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
            payload: ByteArray) -> tuple[int, int, int, int]:
    """Returns (records, end, status, error_offset); fills the output arrays."""
    n = buf.size
    i = 0
    count = 0
    filled = 0
    offsets[0] = 0
    open_record = False
    record_start = 0
    record_type = 0
    record_lsn = np.uint64(0)
    end = 0
    while True:
        if i >= n:
            return count, end, 2 if open_record else 0, record_start if open_record else -1
        left = block_size - (position + i) % block_size
        if left < HEADER_SIZE:
            i += left
            continue
        if n - i < HEADER_SIZE:
            if not open_record and _all_zero(buf, i, n):
                return count, end, 1, i
            return count, end, 2, record_start if open_record else i
        if _all_zero(buf, i, i + HEADER_SIZE):
            if open_record:
                return count, end, 2, record_start
            return count, end, 1, i
        length = int(_load_le(buf, i + 4, 2))
        if length > left - HEADER_SIZE:
            return count, end, 4, i
        if i + HEADER_SIZE + length > n:
            return count, end, 2, record_start if open_record else i
        stored = np.uint32(_load_le(buf, i, 4))
        crc = _fragment_crc(seed, buf, np.uint64(i + 4), np.uint64(i + HEADER_SIZE + length),
                            algorithm)
        if _mask(crc) != stored:
            return count, end, 3, i
        kind = buf[i + 6]
        rtype = buf[i + 7]
        lsn = _load_le(buf, i + 8, 8)
        if rtype == 0 or kind < FULL or kind > LAST:
            return count, end, 5, i
        if kind == FULL or kind == FIRST:
            if open_record:
                return count, end, 5, i
            open_record = True
            record_start = i
            record_type = rtype
            record_lsn = lsn
        elif not open_record or rtype != record_type or lsn != record_lsn:
            return count, end, 5, i
        _copy(payload, filled, buf, i + HEADER_SIZE, length)
        filled += length
        i += HEADER_SIZE + length
        if kind == FULL or kind == LAST:
            types[count] = record_type
            lsns[count] = record_lsn
            starts[count] = record_start
            count += 1
            offsets[count] = filled
            open_record = False
            end = i


@functools.lru_cache(maxsize=64)
def _segment_seed(segment: int, checksum: str = "crc32c") -> np.uint32:
    if not 0 <= segment < 2**64:
        raise ValueError(f"segment number must be in [0, 2**64), got {segment}")
    number = np.array([segment], dtype="<u8")
    if checksum == "crc32":
        return np.uint32(crc32_kernel.crc32(number))
    return np.uint32(crc32c(number))


def _algorithm(checksum: str, implementation: str | None) -> int:
    """The kernels' code for ``checksum`` (``implementation``: of CRC-32C)."""
    if checksum == "crc32":
        return _ZLIB_CRC32
    if checksum != "crc32c":
        raise ValueError(f"unknown WAL checksum {checksum!r}; expected one of {CHECKSUMS}")
    return _CRC32C_HARDWARE if _use_hardware(implementation) else _CRC32C_SOFTWARE


def _check_block(position: int, block_size: int) -> None:
    if not HEADER_SIZE * 2 <= block_size <= MAX_BLOCK_SIZE:
        raise ValueError(f"block_size must be in [{HEADER_SIZE * 2}, {MAX_BLOCK_SIZE}], "
                         f"got {block_size}")
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")


def encoded_size(lengths: Any, position: int = 0, block_size: int = BLOCK_SIZE) -> int:
    """Bytes :func:`encode` produces for records of the given payload ``lengths``
    written at byte ``position`` of a segment (block padding included)."""
    _check_block(position, block_size)
    sizes = np.asarray(lengths, dtype=np.int64)
    if sizes.ndim != 1 or np.any(sizes < 0):
        raise ValueError("lengths must be a 1-D array of non-negative integers")
    offsets = np.zeros(sizes.size + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return int(_encoded_size(offsets, position, block_size))


class SegmentFramer:
    """Frames records for one WAL segment, for a writer that appends to it repeatedly.

    The segment's CRC seed, the block size and the CRC implementation are settled
    once. :meth:`encode` trusts its arrays (int64 offsets, uint8 types in 1..255, as a
    writer builds them) and skips the checks of the module-level :func:`encode`.
    """

    def __init__(self, segment: int, block_size: int = BLOCK_SIZE,
                 implementation: str | None = None) -> None:
        _check_block(0, block_size)
        self.segment = segment
        self.block_size = block_size
        self._seed = _segment_seed(segment)
        self._algorithm = _algorithm("crc32c", implementation)

    def encode(self, payload: ByteArray, offsets: npt.NDArray[np.int64],
               types: npt.NDArray[np.uint8], first_lsn: int, position: int) -> ByteArray:
        """Frame records with LSNs ``first_lsn, first_lsn + 1, ...`` for ``position``."""
        lsns = np.arange(first_lsn, first_lsn + types.size, dtype=np.uint64)
        return _encode(payload, offsets, types, lsns, self._seed, position, self.block_size,
                       self._algorithm)

    def encode_small(self, records: list[tuple[int, bytes]], first_lsn: int,
                     position: int) -> bytes | None:
        """The bytes :meth:`encode` gives for ``(type, payload)`` records, when every
        record fits whole in what is left of the block at ``position`` (else None).

        For the one-put transaction: with a few hundred bytes to frame, calling the
        kernel and building its arrays costs more than framing with ``struct`` and the
        ``crc32c`` package's C function, which compute the same bytes.
        """
        left = self.block_size - position % self.block_size
        if sum(HEADER_SIZE + len(payload) for _, payload in records) > left:
            return None
        seed = int(self._seed)
        parts: list[bytes] = []
        lsn = first_lsn
        for record_type, payload in records:
            tail = _TAIL.pack(len(payload), FULL, record_type, lsn)
            crc = _crc32c_c(tail + payload, seed)
            rotated = ((crc >> 15) | (crc << 17)) + 0xA282EAD8
            parts += (_MASKED_CRC.pack(rotated & 0xFFFFFFFF), tail, payload)
            lsn += 1
        return b"".join(parts)


def encode(payload: Any, offsets: Any, types: Any, lsns: Any, *, segment: int,
           position: int = 0, block_size: int = BLOCK_SIZE,
           implementation: str | None = None, checksum: str = "crc32c") -> ByteArray:
    """Frame a batch of records for byte ``position`` of WAL segment ``segment``.

    Record i has payload ``payload[offsets[i]:offsets[i+1]]``, type ``types[i]``
    (1..255) and LSN ``lsns[i]``. Returns the bytes to write at ``position``: one
    contiguous buffer, block trailers included. Everything is checked before any byte
    is produced: a bad argument raises ``ValueError`` naming it. ``checksum``: one
    of :data:`CHECKSUMS` (the format's; ``implementation`` chooses CRC-32C's).
    """
    _check_block(position, block_size)
    data = as_uint8(payload)
    o = np.ascontiguousarray(offsets, dtype=np.int64)
    t = np.asarray(types)
    lsn = np.asarray(lsns)
    if o.ndim != 1 or o.size < 1:
        raise ValueError("offsets must be a 1-D array of n+1 entries")
    n = o.size - 1
    if t.shape != (n,) or lsn.shape != (n,):
        raise ValueError(f"types and lsns must each have {n} entries (offsets has {n + 1})")
    if o[0] < 0 or o[-1] > data.size or np.any(np.diff(o) < 0):
        raise ValueError(f"offsets must be non-decreasing and within the payload "
                         f"({data.size} bytes)")
    if n and (t.min() < 1 or t.max() > 255):
        raise ValueError("record types must be in 1..255 (0 is reserved)")
    if n and lsn.dtype.kind == "i" and lsn.min() < 0:
        raise ValueError("LSNs must be non-negative")
    return _encode(data, o, t.astype(np.uint8), lsn.astype(np.uint64),
                   _segment_seed(segment, checksum), position, block_size,
                   _algorithm(checksum, implementation))


def decode(buf: Any, *, segment: int, position: int = 0, block_size: int = BLOCK_SIZE,
           implementation: str | None = None, checksum: str = "crc32c") -> DecodedRecords:
    """Validate and split ``buf``, read from byte ``position`` of segment ``segment``.

    Decoding stops at the first fragment that is not a valid continuation and reports
    why in ``status`` (a torn tail after a crash is ``TRUNCATED`` or ``UNWRITTEN``;
    ``CHECKSUM``, ``LENGTH`` and ``FRAGMENT`` are damage). Payloads are copied into
    one contiguous array, so records that span blocks come back whole; ``buf`` may be
    released afterwards. ``checksum``: as for :func:`encode`.
    """
    _check_block(position, block_size)
    data = as_uint8(buf)
    capacity = data.size // HEADER_SIZE + 1
    types = np.empty(capacity, np.uint8)
    lsns = np.empty(capacity, np.uint64)
    offsets = np.empty(capacity + 1, np.int64)
    starts = np.empty(capacity, np.int64)
    payload = np.empty(data.size, np.uint8)
    count, end, status, error_offset = _decode(
        data, _segment_seed(segment, checksum), position, block_size,
        _algorithm(checksum, implementation), types, lsns, offsets, starts, payload)
    return DecodedRecords(
        types=types[:count].copy(), lsns=lsns[:count].copy(),
        offsets=offsets[: count + 1].copy(), starts=starts[:count].copy(),
        payload=payload[: offsets[count]], end=int(end),
        status=DecodeStatus(status), error_offset=int(error_offset),
    )


__all__ = [
    "BLOCK_SIZE", "CHECKSUMS", "FIRST", "FULL", "HEADER_SIZE", "LAST", "MIDDLE", "DecodeStatus",
    "DecodedRecords", "SegmentFramer", "decode", "encode", "encoded_size", "mask", "unmask",
]

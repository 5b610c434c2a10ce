"""Batched decoding of key/value change records (the WAL's ``KV_CHANGES`` payloads).

One call takes any number of records lying in one buffer and returns, for every
change in them, its kind and where its key and value lie in that buffer (nothing is
copied). Record layout (little-endian, ``docs/FORMAT.md`` section 3.3)::

    u32 n; u8 kind[n]; u32 key_length[n]; u32 value_length[n]; keys; values

A record whose lengths do not add up to its size, or that holds a kind other than
the two given, is reported by index and reason; nothing is decoded then.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .jit import kernel

OK = 0
TOO_SHORT = 1
TRUNCATED_TABLE = 2
LENGTHS_MISMATCH = 3
UNKNOWN_KIND = 4
REASONS = {TOO_SHORT: "shorter than its 4-byte count",
           TRUNCATED_TABLE: "too short for its table of kinds and lengths",
           LENGTHS_MISMATCH: "key and value lengths that do not add up to its size",
           UNKNOWN_KIND: "an unknown change kind"}


class Changes(NamedTuple):
    """Change i: ``kinds[i]``, key ``buffer[key_starts[i]:][:key_lengths[i]]``, value
    likewise (length 0 for deletes)."""

    kinds: npt.NDArray[np.uint8]
    key_starts: npt.NDArray[np.int64]
    key_lengths: npt.NDArray[np.int64]
    value_starts: npt.NDArray[np.int64]
    value_lengths: npt.NDArray[np.int64]


class BadRecordError(ValueError):
    """A record that does not decode: ``record`` is its index, ``reason`` says why."""

    def __init__(self, record: int, reason: str) -> None:
        super().__init__(f"change record {record} has {reason}")
        self.record = record
        self.reason = reason


@kernel
def _u32(buffer: Any, position: int) -> Any:
    return (np.int64(buffer[position]) | (np.int64(buffer[position + 1]) << 8)
            | (np.int64(buffer[position + 2]) << 16) | (np.int64(buffer[position + 3]) << 24))


@kernel
def _check(buffer: Any, record_starts: Any, record_ends: Any, kind_a: int,
           kind_b: int) -> tuple[int, int, int]:
    """(status, bad record, total changes) of a validating pass over every record."""
    total = 0
    for r in range(record_starts.size):
        start = record_starts[r]
        size = record_ends[r] - start
        if size < 4:
            return TOO_SHORT, r, 0
        n = _u32(buffer, start)
        table_end = 4 + 9 * n
        if size < table_end:
            return TRUNCATED_TABLE, r, 0
        body = 0
        for i in range(n):
            kind = buffer[start + 4 + i]
            if kind != kind_a and kind != kind_b:
                return UNKNOWN_KIND, r, 0
            body += _u32(buffer, start + 4 + n + 4 * i) + _u32(buffer, start + 4 + 5 * n + 4 * i)
        if table_end + body != size:
            return LENGTHS_MISMATCH, r, 0
        total += n
    return OK, -1, total


@kernel
def _fill(buffer: Any, record_starts: Any, kinds: Any, key_starts: Any, key_lengths: Any,
          value_starts: Any, value_lengths: Any) -> None:
    out = 0
    for r in range(record_starts.size):
        start = record_starts[r]
        n = _u32(buffer, start)
        key_at = start + 4 + 9 * n
        value_at = key_at
        for i in range(n):
            value_at += _u32(buffer, start + 4 + n + 4 * i)
        for i in range(n):
            kinds[out + i] = buffer[start + 4 + i]
            key_length = _u32(buffer, start + 4 + n + 4 * i)
            value_length = _u32(buffer, start + 4 + 5 * n + 4 * i)
            key_starts[out + i] = key_at
            key_lengths[out + i] = key_length
            value_starts[out + i] = value_at
            value_lengths[out + i] = value_length
            key_at += key_length
            value_at += value_length
        out += n


def decode_changes(buffer: Any, record_starts: Any, record_ends: Any, kinds: tuple[int, int],
                   ) -> Changes:
    """Every change of the records ``buffer[record_starts[r]:record_ends[r]]``.

    Raises :class:`BadRecordError` for the first record that does not decode.
    """
    b = np.ascontiguousarray(buffer)
    starts = np.ascontiguousarray(record_starts, np.int64)
    ends = np.ascontiguousarray(record_ends, np.int64)
    if b.ndim != 1 or b.dtype != np.uint8:
        raise TypeError("buffer must be a 1-D uint8 array")
    if starts.shape != ends.shape or (starts.size and (
            starts.min() < 0 or int(ends.max()) > b.size or np.any(ends < starts))):
        raise ValueError(f"records must lie within the buffer ({b.size} bytes)")
    status, bad, total = _check(b, starts, ends, kinds[0], kinds[1])
    if status != OK:
        raise BadRecordError(int(bad), REASONS[int(status)])
    out = Changes(np.empty(total, np.uint8), np.empty(total, np.int64),
                  np.empty(total, np.int64), np.empty(total, np.int64),
                  np.empty(total, np.int64))
    _fill(b, starts, *out)
    return out

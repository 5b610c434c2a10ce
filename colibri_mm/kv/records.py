"""WAL record payload of key/value changes (record type :data:`KV_CHANGES`).

Layout (little-endian), ``n`` changes::

    u32  n
    u8   kind[n]          1 put, 2 delete
    u32  key_length[n]
    u32  value_length[n]  0 for deletes
    ...  keys, concatenated
    ...  values, concatenated

A transaction's changes are split over as many records as needed to keep each
under :data:`MAX_RECORD_PAYLOAD` bytes (a single pair may exceed it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import CorruptionError
from ..kernels.merge import Entries

KV_CHANGES = 1
"""WAL record type of a batch of key/value changes."""
PUT = 1
DELETE = 2
MAX_RECORD_PAYLOAD = 1 << 20
SMALL_BATCH = 32
"""Up to this many changes are encoded with ``struct`` (numpy's per-call cost dominates)."""
_ONE_CHANGE = struct.Struct("<IBII")


def encode_changes(keys: Sequence[bytes], values: Sequence[bytes | None]) -> bytes:
    """Payload of one record holding ``keys[i] -> values[i]`` (None: delete)."""
    n = len(keys)
    if n == 1:
        value = values[0]
        if value is None:
            return _ONE_CHANGE.pack(1, DELETE, len(keys[0]), 0) + keys[0]
        return b"".join((_ONE_CHANGE.pack(1, PUT, len(keys[0]), len(value)), keys[0], value))
    if n <= SMALL_BATCH:
        kinds_ = [PUT if v is not None else DELETE for v in values]
        lengths = [len(k) for k in keys] + [len(v) if v is not None else 0 for v in values]
        return b"".join([struct.pack(f"<I{n}B{2 * n}I", n, *kinds_, *lengths), *keys,
                         *(v for v in values if v is not None)])
    kinds = np.fromiter((PUT if v is not None else DELETE for v in values), np.uint8, n)
    key_lengths = np.fromiter(map(len, keys), np.uint32, n)
    value_lengths = np.fromiter((len(v) if v is not None else 0 for v in values),
                                np.uint32, n)
    return b"".join([
        np.uint32(n).tobytes(), kinds.tobytes(), key_lengths.tobytes(),
        value_lengths.tobytes(), b"".join(keys),
        b"".join(v for v in values if v is not None),
    ])


def split_changes(keys: Sequence[bytes],
                  values: Sequence[bytes | None]) -> Iterator[tuple[int, int]]:
    """Ranges ``[i, j)`` of the changes, each encodable under the record size limit."""
    if len(keys) == 1:
        yield 0, 1
        return
    start = 0
    size = 0
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        item = 9 + len(key) + (len(value) if value is not None else 0)
        if size and size + item > MAX_RECORD_PAYLOAD:
            yield start, i
            start, size = i, 0
        size += item
    if start < len(keys) or not keys:
        yield start, len(keys)


def record_bounds(entries: Entries) -> list[tuple[int, int]]:
    """Ranges ``[i, j)`` of sorted ``entries``, each encodable under the record size
    limit (a single pair may exceed it)."""
    n = int(entries.kinds.size)
    ends = np.cumsum(9 + np.diff(entries.key_offsets) + np.diff(entries.value_offsets))
    bounds = []
    start = 0
    while start < n:
        before = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, before + MAX_RECORD_PAYLOAD, "right")))
        bounds.append((start, stop))
        start = stop
    return bounds


def encode_entries(entries: Entries, bounds: list[tuple[int, int]],
                   last_record: bytes) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """One buffer holding a record per range of ``bounds`` over sorted ``entries``,
    then ``last_record`` as is (a transaction's COMMIT); and the record offsets.
    Built from the arrays with numpy copies, without an object per pair."""
    ko, vo = entries.key_offsets, entries.value_offsets
    sizes = [4 + 9 * (j - i) + int(ko[j] - ko[i] + vo[j] - vo[i]) for i, j in bounds]
    offsets = np.zeros(len(bounds) + 2, np.int64)
    np.cumsum([*sizes, len(last_record)], out=offsets[1:])
    buffer = np.empty(int(offsets[-1]), np.uint8)
    for (i, j), at in zip(bounds, offsets.tolist(), strict=False):
        n = j - i
        buffer[at : at + 4] = np.array([n], "<u4").view(np.uint8)
        buffer[at + 4 : at + 4 + n] = entries.kinds[i:j]
        buffer[at + 4 + n : at + 4 + 5 * n] = np.diff(ko[i : j + 1]).astype("<u4").view(np.uint8)
        buffer[at + 4 + 5 * n : at + 4 + 9 * n] = \
            np.diff(vo[i : j + 1]).astype("<u4").view(np.uint8)
        keys_at = at + 4 + 9 * n
        values_at = keys_at + int(ko[j] - ko[i])
        buffer[keys_at:values_at] = entries.key_data[ko[i] : ko[j]]
        buffer[values_at : values_at + int(vo[j] - vo[i])] = entries.value_data[vo[i] : vo[j]]
    buffer[int(offsets[-2]) :] = np.frombuffer(last_record, np.uint8)
    return buffer, offsets


def decode_changes(payload: npt.NDArray[np.uint8] | bytes,
                   where: str) -> tuple[list[bytes], list[bytes | None]]:
    """Keys and values (None for deletes) of one record; ``where`` names it in errors."""
    data = bytes(payload)
    if len(data) < 4:
        raise CorruptionError(f"key/value record too short ({len(data)} bytes) at {where}")
    n = int(np.frombuffer(data, np.uint32, 1)[0])
    table_end = 4 + 9 * n
    if len(data) < table_end:
        raise CorruptionError(f"key/value record of {n} changes is truncated at {where}")
    kinds = np.frombuffer(data, np.uint8, n, 4)
    key_lengths = np.frombuffer(data, np.uint32, n, 4 + n).astype(np.int64)
    value_lengths = np.frombuffer(data, np.uint32, n, 4 + 5 * n).astype(np.int64)
    if np.any((kinds != PUT) & (kinds != DELETE)):
        raise CorruptionError(f"key/value record has an unknown change kind at {where}")
    key_ends = table_end + np.cumsum(key_lengths)
    keys_end = int(key_ends[-1]) if n else table_end
    value_ends = keys_end + np.cumsum(value_lengths)
    if (int(value_ends[-1]) if n else keys_end) != len(data):
        raise CorruptionError(f"key/value record lengths do not add up at {where}")
    keys = [data[e - k : e] for e, k in zip(key_ends.tolist(), key_lengths.tolist(),
                                              strict=True)]
    values: list[bytes | None] = [
        data[e - v : e] if kind == PUT else None
        for e, v, kind in zip(value_ends.tolist(), value_lengths.tolist(), kinds.tolist(),
                              strict=True)
    ]
    return keys, values

"""Merging two sorted runs of key/value entries into one, in two kernel calls.

A run is a sorted list of entries with distinct keys: a kind per entry (a put or a
delete marker) and Arrow-style offsets + data for keys and for values. Merging a
newer run with an older one keeps, for a key present in both, the newer entry; with
``drop_deletes`` (the merge produces the oldest run, so nothing older remains for a
delete marker to hide) delete markers are left out. Keys compare as bytes.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .jit import kernel
from .search import _compare_bytes


class Entries(NamedTuple):
    """Sorted entries: entry i has kind ``kinds[i]``, key
    ``key_data[key_offsets[i]:key_offsets[i+1]]`` and likewise a value."""

    kinds: npt.NDArray[np.uint8]
    key_offsets: npt.NDArray[np.int64]
    key_data: npt.NDArray[np.uint8]
    value_offsets: npt.NDArray[np.int64]
    value_data: npt.NDArray[np.uint8]


@kernel
def _plan(new_ko: Any, new_kd: Any, new_kinds: Any, new_vo: Any, old_ko: Any, old_kd: Any,
          old_kinds: Any, old_vo: Any, delete_kind: int, drop_deletes: bool,
          source: Any, index: Any) -> tuple[int, int, int]:
    """Fill (source, index) of each output entry; return (count, key bytes, value bytes)."""
    n_new = new_kinds.size
    n_old = old_kinds.size
    i = 0
    j = 0
    count = 0
    key_bytes = 0
    value_bytes = 0
    while i < n_new or j < n_old:
        if j >= n_old:
            c = -1
        elif i >= n_new:
            c = 1
        else:
            c = _compare_bytes(new_kd, new_ko[i], new_ko[i + 1], old_kd, old_ko[j],
                               old_ko[j + 1])
        if c <= 0:
            take_new = True
            position = i
            i += 1
            if c == 0:
                j += 1
        else:
            take_new = False
            position = j
            j += 1
        kind = new_kinds[position] if take_new else old_kinds[position]
        if drop_deletes and kind == delete_kind:
            continue
        source[count] = 0 if take_new else 1
        index[count] = position
        if take_new:
            key_bytes += new_ko[position + 1] - new_ko[position]
            value_bytes += new_vo[position + 1] - new_vo[position]
        else:
            key_bytes += old_ko[position + 1] - old_ko[position]
            value_bytes += old_vo[position + 1] - old_vo[position]
        count += 1
    return count, key_bytes, value_bytes


SLICE_COPY_BYTES = 256
"""From this length on a span is copied by slice assignment (a memcpy); shorter
ones by a loop, which costs much less than a slice's setup for record-sized spans."""


@kernel
def _copy_span(dst: Any, at: int, src: Any, start: int, end: int) -> int:
    length = end - start
    if length >= SLICE_COPY_BYTES:
        dst[at : at + length] = src[start:end]
    else:
        for k in range(length):
            dst[at + k] = src[start + k]
    return at + length


@kernel
def _copy_block(e: int, f: int, p: int, kinds: Any, ko: Any, kd: Any, vo: Any, vd: Any,
                src_kinds: Any, src_ko: Any, src_kd: Any, src_vo: Any, src_vd: Any,
                k_at: int, v_at: int) -> tuple[int, int]:
    """Copy source entries ``p .. p + f - e - 1`` to output entries ``e .. f - 1``:
    their key and value bytes are contiguous, so each is one span."""
    for k in range(f - e):
        kinds[e + k] = src_kinds[p + k]
        ko[e + k + 1] = k_at + src_ko[p + k + 1] - src_ko[p]
        vo[e + k + 1] = v_at + src_vo[p + k + 1] - src_vo[p]
    k_at = _copy_span(kd, k_at, src_kd, src_ko[p], src_ko[p + f - e])
    v_at = _copy_span(vd, v_at, src_vd, src_vo[p], src_vo[p + f - e])
    return k_at, v_at


@kernel
def _gather(source: Any, index: Any, count: int,
            new_kinds: Any, new_ko: Any, new_kd: Any, new_vo: Any, new_vd: Any,
            old_kinds: Any, old_ko: Any, old_kd: Any, old_vo: Any, old_vd: Any,
            kinds: Any, ko: Any, kd: Any, vo: Any, vd: Any) -> None:
    """Fill the output from the plan, a block of consecutive entries of one source
    at a time (merging a large run with a few changes copies a few large spans)."""
    ko[0] = 0
    vo[0] = 0
    k_at = 0
    v_at = 0
    e = 0
    while e < count:
        p = index[e]
        f = e + 1
        while f < count and source[f] == source[e] and index[f] == index[f - 1] + 1:
            f += 1
        if source[e] == 0:
            k_at, v_at = _copy_block(e, f, p, kinds, ko, kd, vo, vd, new_kinds, new_ko,
                                     new_kd, new_vo, new_vd, k_at, v_at)
        else:
            k_at, v_at = _copy_block(e, f, p, kinds, ko, kd, vo, vd, old_kinds, old_ko,
                                     old_kd, old_vo, old_vd, k_at, v_at)
        e = f


def merge(newer: Entries, older: Entries, *, delete_kind: int, drop_deletes: bool) -> Entries:
    """The entries of ``newer`` and ``older`` in one sorted run (newer wins a tie)."""
    capacity = newer.kinds.size + older.kinds.size
    source = np.empty(capacity, np.uint8)
    index = np.empty(capacity, np.int64)
    count, key_bytes, value_bytes = _plan(
        newer.key_offsets, newer.key_data, newer.kinds, newer.value_offsets,
        older.key_offsets, older.key_data, older.kinds, older.value_offsets,
        delete_kind, drop_deletes, source, index)
    out = Entries(np.empty(count, np.uint8), np.empty(count + 1, np.int64),
                  np.empty(key_bytes, np.uint8), np.empty(count + 1, np.int64),
                  np.empty(value_bytes, np.uint8))
    _gather(source, index, count, *newer, *older, *out)
    return out

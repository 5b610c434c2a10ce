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


@kernel
def _copy_span(dst: Any, at: int, src: Any, start: int, end: int) -> int:
    for k in range(end - start):
        dst[at + k] = src[start + k]
    return at + end - start


@kernel
def _gather(source: Any, index: Any, count: int,
            new_kinds: Any, new_ko: Any, new_kd: Any, new_vo: Any, new_vd: Any,
            old_kinds: Any, old_ko: Any, old_kd: Any, old_vo: Any, old_vd: Any,
            kinds: Any, ko: Any, kd: Any, vo: Any, vd: Any) -> None:
    ko[0] = 0
    vo[0] = 0
    k_at = 0
    v_at = 0
    for e in range(count):
        p = index[e]
        if source[e] == 0:
            kinds[e] = new_kinds[p]
            k_at = _copy_span(kd, k_at, new_kd, new_ko[p], new_ko[p + 1])
            v_at = _copy_span(vd, v_at, new_vd, new_vo[p], new_vo[p + 1])
        else:
            kinds[e] = old_kinds[p]
            k_at = _copy_span(kd, k_at, old_kd, old_ko[p], old_ko[p + 1])
            v_at = _copy_span(vd, v_at, old_vd, old_vo[p], old_vo[p + 1])
        ko[e + 1] = k_at
        vo[e + 1] = v_at


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

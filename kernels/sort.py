"""Sorting variable-length byte keys: the bulk path of ``put_many`` and WAL replay.

Keys are *slices* of one byte buffer: key i is ``buffer[starts[i]:starts[i]+lengths[i]]``
(so the keys of many WAL records can be sorted where they lie, without first being
copied together). :func:`argsort_slices` orders them as bytes compare (a shorter key
before a longer one it is a prefix of), stably: equal keys keep their input order,
so the last of them is the newest write. :func:`newest_of_each` keeps that last one
per distinct key, and :func:`gather_slices` copies the chosen slices into Arrow-style
offsets + data, the layout of :class:`~colibri_mm.kernels.merge.Entries` (optionally
each after a common prefix).

The sort is a most-significant-word-first radix sort: keys are ordered by their
first 8 bytes read as a big-endian ``uint64`` (zero padded; an LSD byte-radix pass
per byte that is not the same in every key), then each group of keys still tied is
ordered by the next 8 bytes, and so on; a group whose keys all end within the bytes
compared so far is ordered by length (padding made "ab" and "ab\\0" tie). Groups of
at most :data:`SMALL_GROUP` keys are insertion sorted. Random keys are done after
the first word; keys sharing a long prefix ("user:000123") cost one pass per word
of the prefix, never a quadratic step.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from .jit import kernel
from .search import _compare_bytes

SMALL_GROUP = 24
"""Groups up to this size are insertion sorted (cheaper than a radix pass)."""


@kernel
def _word(buffer: Any, start: int, length: int, depth: int) -> np.uint64:
    """Bytes ``[8*depth, 8*depth+8)`` of a key as a big-endian integer, zero padded."""
    word = np.uint64(0)
    base = 8 * depth
    for k in range(8):
        word = word << np.uint64(8)
        if base + k < length:
            word = word | np.uint64(buffer[start + base + k])
    return word


@kernel
def _insertion_sort(order: Any, lo: int, hi: int, starts: Any, lengths: Any,
                    buffer: Any) -> None:
    """Stable insertion sort of ``order[lo:hi]`` by full key comparison."""
    for i in range(lo + 1, hi):
        item = order[i]
        a0 = starts[item]
        a1 = a0 + lengths[item]
        j = i - 1
        while j >= lo:
            other = order[j]
            b0 = starts[other]
            if _compare_bytes(buffer, b0, b0 + lengths[other], buffer, a0, a1) <= 0:
                break
            order[j + 1] = other
            j -= 1
        order[j + 1] = item


@kernel
def _radix_by_word(order: Any, words: Any, lo: int, hi: int, spare_order: Any,
                   spare_words: Any, counts: Any) -> None:
    """Stable LSD radix sort of ``order[lo:hi]`` by ``words[lo:hi]``, a byte per pass
    (one counting pass for all eight bytes); a byte equal in every word is skipped."""
    n = hi - lo
    counts[:, :] = 0
    for i in range(lo, hi):
        word = words[i]
        for byte in range(8):
            counts[byte, np.intp((word >> np.uint64(8 * byte)) & np.uint64(0xFF))] += 1
    for byte in range(8):
        shift = np.uint64(8 * byte)
        if counts[byte, np.intp((words[lo] >> shift) & np.uint64(0xFF))] == n:
            continue
        total = 0
        for b in range(256):
            c = counts[byte, b]
            counts[byte, b] = total
            total += c
        for i in range(lo, hi):
            digit = np.intp((words[i] >> shift) & np.uint64(0xFF))
            p = lo + counts[byte, digit]
            counts[byte, digit] += 1
            spare_order[p] = order[i]
            spare_words[p] = words[i]
        for i in range(lo, hi):
            order[i] = spare_order[i]
            words[i] = spare_words[i]


@kernel
def _sort_by_length(order: Any, lo: int, hi: int, lengths: Any, spare_order: Any) -> None:
    """Stable counting sort of ``order[lo:hi]`` by key length."""
    longest = 0
    shortest = lengths[order[lo]]
    for i in range(lo, hi):
        length = lengths[order[i]]
        longest = max(longest, length)
        shortest = min(shortest, length)
    if longest == shortest:
        return
    counts = np.zeros(longest - shortest + 1, np.int64)
    for i in range(lo, hi):
        counts[lengths[order[i]] - shortest] += 1
    total = 0
    for b in range(counts.size):
        c = counts[b]
        counts[b] = total
        total += c
    for i in range(lo, hi):
        bucket = lengths[order[i]] - shortest
        spare_order[lo + counts[bucket]] = order[i]
        counts[bucket] += 1
    for i in range(lo, hi):
        order[i] = spare_order[i]


@kernel
def _argsort(starts: Any, lengths: Any, buffer: Any, small_group: int) -> Any:
    n = starts.size
    order = np.arange(n)
    words = np.empty(n, np.uint64)
    spare_order = np.empty(n, np.int64)
    spare_words = np.empty(n, np.uint64)
    counts = np.empty((8, 256), np.int64)
    stack = [(0, n, 0)]
    while stack:
        lo, hi, depth = stack.pop()
        if hi - lo <= small_group:
            _insertion_sort(order, lo, hi, starts, lengths, buffer)
            continue
        for i in range(lo, hi):
            item = order[i]
            words[i] = _word(buffer, starts[item], lengths[item], depth)
        _radix_by_word(order, words, lo, hi, spare_order, spare_words, counts)
        i = lo
        while i < hi:
            j = i + 1
            while j < hi and words[j] == words[i]:
                j += 1
            if j - i > 1:
                longest = 0
                for k in range(i, j):
                    longest = max(longest, lengths[order[k]])
                if longest > 8 * (depth + 1):
                    stack.append((i, j, depth + 1))
                else:
                    _sort_by_length(order, i, j, lengths, spare_order)
            i = j
    return order


@kernel
def _newest_of_each(order: Any, starts: Any, lengths: Any, buffer: Any) -> Any:
    n = order.size
    keep = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        if i + 1 < n:
            a = order[i]
            b = order[i + 1]
            if _compare_bytes(buffer, starts[a], starts[a] + lengths[a], buffer, starts[b],
                              starts[b] + lengths[b]) == 0:
                continue
        keep[count] = order[i]
        count += 1
    return keep[:count]


@kernel
def _strictly_increasing(starts: Any, lengths: Any, buffer: Any) -> bool:
    for i in range(starts.size - 1):
        if _compare_bytes(buffer, starts[i], starts[i] + lengths[i], buffer, starts[i + 1],
                          starts[i + 1] + lengths[i + 1]) >= 0:
            return False
    return True


@kernel
def _within(starts: Any, lengths: Any, size: int) -> bool:
    for i in range(starts.size):
        if starts[i] < 0 or lengths[i] < 0 or starts[i] + lengths[i] > size:
            return False
    return True


@kernel
def _gather(starts: Any, lengths: Any, buffer: Any, indices: Any, prefix: Any) -> Any:
    n = indices.size
    p = prefix.size
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + p + lengths[indices[i]]
    data = np.empty(offsets[n], np.uint8)
    for i in range(n):
        source = starts[indices[i]]
        length = lengths[indices[i]]
        target = offsets[i]
        for k in range(p):
            data[target + k] = prefix[k]
        data[target + p : target + p + length] = buffer[source : source + length]
    return offsets, data


def _slices(starts: Any, lengths: Any, buffer: Any) -> tuple[npt.NDArray[np.int64],
                                                            npt.NDArray[np.int64],
                                                            npt.NDArray[np.uint8]]:
    s = np.ascontiguousarray(starts, np.int64)
    n = np.ascontiguousarray(lengths, np.int64)
    b = np.ascontiguousarray(buffer)
    if s.ndim != 1 or s.shape != n.shape:
        raise ValueError("starts and lengths must be 1-D arrays of the same size")
    if b.ndim != 1 or b.dtype != np.uint8:
        raise TypeError("buffer must be a 1-D uint8 array")
    if not _within(s, n, b.size):
        raise ValueError(f"slices must lie within the buffer ({b.size} bytes)")
    return s, n, b


def argsort_slices(starts: Any, lengths: Any, buffer: Any) -> npt.NDArray[np.int64]:
    """Indices that sort the keys by bytes; equal keys keep their input order."""
    s, n, b = _slices(starts, lengths, buffer)
    order: npt.NDArray[np.int64] = _argsort(s, n, b, SMALL_GROUP)
    return order


def newest_of_each(order: Any, starts: Any, lengths: Any,
                   buffer: Any) -> npt.NDArray[np.int64]:
    """From a stable sort ``order``, the last (newest) index of each distinct key."""
    s, n, b = _slices(starts, lengths, buffer)
    kept: npt.NDArray[np.int64] = _newest_of_each(np.ascontiguousarray(order, np.int64),
                                                  s, n, b)
    return kept


def sorted_distinct(starts: Any, lengths: Any, buffer: Any) -> npt.NDArray[np.int64]:
    """Indices of the newest write of each distinct key, in key order.

    Keys already in strictly increasing order (a bulk commit writes its changes
    sorted) are recognised in one sequential pass and not sorted again.
    """
    s, n, b = _slices(starts, lengths, buffer)
    if _strictly_increasing(s, n, b):
        return np.arange(s.size, dtype=np.int64)
    order = argsort_slices(starts, lengths, buffer)
    return newest_of_each(order, starts, lengths, buffer)


def gather_slices(starts: Any, lengths: Any, buffer: Any, indices: Any,
                  prefix: bytes = b"") -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Slices ``indices`` copied into Arrow-style ``(offsets, data)``, each after
    ``prefix`` (a key space byte, say)."""
    s, n, b = _slices(starts, lengths, buffer)
    picked = np.ascontiguousarray(indices, np.int64)
    if picked.size and (picked.min() < 0 or picked.max() >= s.size):
        raise IndexError(f"gather index out of range for {s.size} slices")
    offsets, data = _gather(s, n, b, picked, np.frombuffer(prefix, np.uint8))
    return offsets, data


def sort_words(words: Any) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """``uint64`` values sorted, and the stable permutation that sorts them (equal
    values keep their input order), by the same LSD radix passes as the byte keys'
    first word: a byte per pass, bytes equal in every value skipped."""
    ordered = np.array(words, np.uint64)
    order = np.arange(ordered.size, dtype=np.int64)
    if ordered.size > 1:
        _radix_by_word(order, ordered, 0, ordered.size, np.empty_like(order),
                       np.empty_like(ordered), np.empty((8, 256), np.int64))
    return ordered, order

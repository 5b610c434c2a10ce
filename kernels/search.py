"""Binary search inside a page: sorted fixed-width keys (numbers, fixed-size binary)
and sorted variable-length byte keys laid out Arrow-style as offsets + data.

Every function answers like ``np.searchsorted``: ``side="left"`` gives the first
position whose key is not less than the probe (lower bound), ``side="right"`` the
first position whose key is greater (upper bound); ``[left, right)`` is the range of
equal keys, which is what range scans need. ``lookup_many`` gives the position of an
equal key or -1.

Orders: numbers in numpy's sort order (NaN after every number, and equal to NaN);
byte keys lexicographically by unsigned byte, a proper prefix before the longer key
(``memcmp``, then length), which is Python's ``bytes`` order.

The batched numeric kernel walks eight probes in lockstep with a branchless search,
so their cache misses overlap: on a 1M-key page it runs about 2x ``np.searchsorted``.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .jit import kernel

Side = Literal["left", "right"]
Positions = npt.NDArray[np.int64]

LANES: Final = 8
"""Probes searched in lockstep by the batched numeric kernel."""


@kernel
def _less(a: Any, b: Any) -> bool:
    """numpy's sort order: NaN sorts after everything (for integers, plain ``<``)."""
    return bool(a < b or (b != b and a == a))  # b != b: b is NaN


@kernel
def _before(value: Any, key: Any, right: bool) -> bool:
    """Whether ``value`` lies strictly before the answer for probe ``key``."""
    if right:
        return not _less(key, value)
    return _less(value, key)


@kernel
def _numeric_one(hay: Any, key: Any, right: bool) -> np.uint64:
    n = np.uint64(hay.size)
    if n == 0:
        return np.uint64(0)
    base = np.uint64(0)
    while n > 1:
        half = n >> np.uint64(1)
        base = base + half if _before(hay[base + half], key, right) else base
        n -= half
    return base + np.uint64(1) if _before(hay[base], key, right) else base


@kernel
def _numeric_many(hay: Any, keys: Any, right: bool, out: Positions) -> None:
    size = np.uint64(hay.size)
    count = keys.size
    done = 0
    if size > 0:
        bases = np.zeros(LANES, np.uint64)
        probes = np.empty(LANES, hay.dtype)
        while done + LANES <= count:
            for lane in range(LANES):
                bases[lane] = 0
                probes[lane] = keys[done + lane]
            n = size
            while n > 1:
                half = n >> np.uint64(1)
                for lane in range(LANES):
                    b = bases[lane]
                    bases[lane] = b + half if _before(hay[b + half], probes[lane], right) else b
                n -= half
            for lane in range(LANES):
                b = bases[lane]
                out[done + lane] = b + np.uint64(1) if _before(hay[b], probes[lane], right) else b
            done += LANES
    for j in range(done, count):
        out[j] = _numeric_one(hay, keys[j], right)


@kernel
def _numeric_lookup(hay: Any, keys: Any, positions: Positions) -> None:
    for j in range(keys.size):
        p = positions[j]
        if p >= hay.size or _less(keys[j], hay[p]):
            positions[j] = -1


@kernel
def _compare_bytes(a: Any, a_start: int, a_end: int, b: Any, b_start: int, b_end: int) -> int:
    """-1, 0 or 1 as ``a[a_start:a_end]`` sorts before, equal to or after ``b[...]``."""
    la = a_end - a_start
    lb = b_end - b_start
    common = la if la < lb else lb
    for k in range(common):
        x = a[a_start + k]
        y = b[b_start + k]
        if x != y:
            return -1 if x < y else 1
    if la == lb:
        return 0
    return -1 if la < lb else 1


@kernel
def _row_before(offsets: Any, data: Any, row: int, key: Any, k0: int, k1: int,
                right: bool) -> bool:
    """Whether row ``row`` sorts before ``key[k0:k1]`` (``right``: or equals it)."""
    c = _compare_bytes(data, offsets[row], offsets[row + 1], key, k0, k1)
    return c < 0 or (right and c == 0)


@kernel
def _bisect_bytes(offsets: Any, data: Any, key: Any, k0: int, k1: int, lo: int, hi: int,
                  right: bool) -> int:
    """Insertion position of ``key[k0:k1]`` among rows ``lo..hi`` (the answer lies there)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if _row_before(offsets, data, mid, key, k0, k1, right):
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def _bytes_many(offsets: Any, data: Any, key_offsets: Any, key_data: Any, right: bool,
                out: Positions) -> None:
    """Search rows ``data[offsets[i]:offsets[i+1]]`` (fixed width: offsets i*w)."""
    size = offsets.size - 1
    for j in range(key_offsets.size - 1):
        out[j] = _bisect_bytes(offsets, data, key_data, key_offsets[j], key_offsets[j + 1],
                               0, size, right)


@kernel
def _bytes_many_ordered(offsets: Any, data: Any, key_offsets: Any, key_data: Any,
                        order: Any, right: bool, out: Positions) -> None:
    """Like :func:`_bytes_many`, visiting the probes in ``order``: while each probe
    sorts at or after the one before it, its search gallops forward from the answer
    before (near, cache-warm rows) instead of bisecting the whole page; a probe that
    sorts before its predecessor starts again from 0, so any order gives the same
    answers."""
    size = offsets.size - 1
    start = 0
    for t in range(order.size):
        j = order[t]
        k0 = key_offsets[j]
        k1 = key_offsets[j + 1]
        if t > 0:
            p = order[t - 1]
            if _compare_bytes(key_data, k0, k1, key_data, key_offsets[p],
                              key_offsets[p + 1]) < 0:
                start = 0
        lo = start
        hi = start
        step = 1
        while hi < size and _row_before(offsets, data, hi, key_data, k0, k1, right):
            lo = hi + 1
            hi = lo + step
            step *= 2
        start = _bisect_bytes(offsets, data, key_data, k0, k1, lo, min(hi, size), right)
        out[j] = start


@kernel
def _bytes_lookup(offsets: Any, data: Any, key_offsets: Any, key_data: Any, order: Any,
                  positions: Positions) -> None:
    """Keep only the positions holding their probe, visited in ``order``."""
    size = offsets.size - 1
    for t in range(order.size):
        j = order[t]
        p = positions[j]
        if p >= size or _compare_bytes(data, offsets[p], offsets[p + 1], key_data,
                                       key_offsets[j], key_offsets[j + 1]) != 0:
            positions[j] = -1


@kernel
def _bytes_one(offsets: Any, data: Any, key: Any, right: bool) -> int:
    return _bisect_bytes(offsets, data, key, 0, key.size, 0, offsets.size - 1, right)


@kernel
def _bytes_find(offsets: Any, data: Any, key: Any) -> int:
    """Position of a row equal to ``key``, or -1 (one call: search and compare)."""
    position = _bytes_one(offsets, data, key, False)
    if position < offsets.size - 1 and _compare_bytes(
            data, offsets[position], offsets[position + 1], key, 0, key.size) == 0:
        return position
    return -1


def _check_side(side: str) -> bool:
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return side == "right"


def _fixed_rows(array: Any, name: str) -> npt.NDArray[np.uint8]:
    """A fixed-size-binary array as a C-contiguous 2-D uint8 array (rows)."""
    a = np.asarray(array)
    if a.dtype.kind in "SV" and a.ndim == 1:
        a = np.ascontiguousarray(a).view(np.uint8).reshape(a.size, a.dtype.itemsize)
    if a.ndim != 2 or a.dtype != np.uint8:
        raise TypeError(f"{name} must be a 2-D uint8 array of fixed-size binary rows, "
                        f"got {a.ndim}-D {a.dtype}")
    return np.ascontiguousarray(a)


def _numeric_probes(haystack: npt.NDArray[Any], keys: Any) -> npt.NDArray[Any]:
    probes = np.atleast_1d(np.asarray(keys))
    if probes.ndim != 1:
        raise ValueError(f"keys must be 1-D, got shape {probes.shape}")
    if probes.dtype == haystack.dtype:
        return np.ascontiguousarray(probes)
    if probes.dtype.kind not in "iufb":
        raise TypeError(f"keys of dtype {probes.dtype} cannot be searched in a "
                        f"{haystack.dtype} page")
    with np.errstate(invalid="ignore", over="ignore"):
        cast = probes.astype(haystack.dtype)
        exact = np.array_equal(cast.astype(probes.dtype), probes, equal_nan=True)
    if not exact:
        raise ValueError(f"keys do not fit the page's key type {haystack.dtype}")
    return cast


def _numeric_haystack(haystack: Any) -> npt.NDArray[Any]:
    hay = np.asarray(haystack)
    if hay.ndim != 1 or hay.dtype.kind not in "iufbmM":
        raise TypeError(f"haystack must be a 1-D numeric array, got {hay.ndim}-D {hay.dtype}")
    if hay.dtype.kind in "mM":
        hay = hay.view(np.int64)
    return np.ascontiguousarray(hay)


def search_many(haystack: Any, keys: Any, side: Side = "left") -> Positions:
    """Insertion positions of ``keys`` in the sorted ``haystack``, in one kernel call.

    ``haystack`` is a sorted 1-D numeric array, or sorted fixed-size binary rows (a 2-D
    uint8 array, or a 1-D ``S``/``V`` array). Same answers as ``np.searchsorted``.
    """
    right = _check_side(side)
    hay = np.asarray(haystack)
    if hay.ndim == 2 or hay.dtype.kind in "SV":
        rows = _fixed_rows(hay, "haystack")
        probes = _fixed_rows(keys, "keys")
        if probes.shape[1] != rows.shape[1]:
            raise ValueError(f"keys are {probes.shape[1]} bytes wide, the page's keys "
                             f"{rows.shape[1]}")
        return _search_rows(rows, probes, right)
    hay = _numeric_haystack(hay)
    if np.asarray(keys).dtype.kind in "mM":
        keys = np.asarray(keys).view(np.int64)
    probes = _numeric_probes(hay, keys)
    out = np.empty(probes.size, np.int64)
    _numeric_many(hay, probes, right, out)
    return out


def _row_offsets(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    return np.arange(rows.shape[0] + 1, dtype=np.int64) * np.int64(rows.shape[1])


def _search_rows(rows: npt.NDArray[np.uint8], probes: npt.NDArray[np.uint8],
                 right: bool) -> Positions:
    out = np.empty(probes.shape[0], np.int64)
    _bytes_many(_row_offsets(rows), rows.reshape(-1), _row_offsets(probes),
                probes.reshape(-1), right, out)
    return out


def search(haystack: Any, key: Any, side: Side = "left") -> int:
    """Insertion position of one ``key`` in the sorted ``haystack`` (see :func:`search_many`)."""
    hay = np.asarray(haystack)
    if hay.ndim == 2 or hay.dtype.kind in "SV":
        key_rows = np.frombuffer(bytes(key), np.uint8).reshape(1, -1)
        return int(search_many(hay, key_rows, side)[0])
    return int(search_many(hay, [key], side)[0])


def lookup_many(haystack: Any, keys: Any) -> Positions:
    """Position of a key equal to each of ``keys`` in the sorted ``haystack``, or -1."""
    positions = search_many(haystack, keys, "left")
    hay = np.asarray(haystack)
    if hay.ndim == 2 or hay.dtype.kind in "SV":
        rows = _fixed_rows(hay, "haystack")
        probes = _fixed_rows(keys, "keys")
        _bytes_lookup(_row_offsets(rows), rows.reshape(-1), _row_offsets(probes),
                      probes.reshape(-1), np.arange(positions.size), positions)
        return positions
    hay = _numeric_haystack(hay)
    if np.asarray(keys).dtype.kind in "mM":
        keys = np.asarray(keys).view(np.int64)
    _numeric_lookup(hay, _numeric_probes(hay, keys), positions)
    return positions


def pack_varlen(values: Iterable[bytes]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Arrow-style ``(offsets, data)`` of byte strings: value i is data[offsets[i]:offsets[i+1]]."""
    items = [bytes(v) for v in values]
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum([len(v) for v in items], out=offsets[1:])
    data = np.frombuffer(b"".join(items), np.uint8)
    return offsets, data


def _varlen(offsets: Any, data: Any, name: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    o = np.ascontiguousarray(offsets)
    d = np.ascontiguousarray(data)
    if o.ndim != 1 or o.dtype not in (np.int32, np.int64) or o.size < 1:
        raise TypeError(f"{name} offsets must be a 1-D int32 or int64 array of n+1 entries")
    if d.ndim != 1 or d.dtype != np.uint8:
        raise TypeError(f"{name} data must be a 1-D uint8 array")
    if o[0] < 0 or o[-1] > d.size or np.any(np.diff(o) < 0):
        raise ValueError(f"{name} offsets must be non-decreasing and within the data "
                         f"({d.size} bytes)")
    return o, d


def search_many_varlen(offsets: Any, data: Any, key_offsets: Any, key_data: Any,
                       side: Side = "left", order: Any = None) -> Positions:
    """Insertion positions of variable-length byte keys among sorted variable-length keys.

    The page holds ``n`` keys as ``offsets`` (n+1 entries, int32 or int64) and
    ``data`` (uint8); the probes are laid out the same way (see :func:`pack_varlen`).
    ``order``, a permutation of the probes that sorts them (say from
    ``sort.argsort_slices``), makes many probes into a big page much faster: each
    search then starts from the one before. The answers do not depend on it.
    """
    right = _check_side(side)
    o, d = _varlen(offsets, data, "page")
    ko, kd = _varlen(key_offsets, key_data, "key")
    out = np.empty(ko.size - 1, np.int64)
    if order is None:
        _bytes_many(o, d, ko, kd, right, out)
        return out
    visit = np.ascontiguousarray(order, np.int64)
    if visit.shape != out.shape or (visit.size and (
            visit.min() < 0 or not np.array_equal(np.bincount(visit, minlength=out.size),
                                                  np.ones(out.size, np.int64)))):
        raise ValueError("order must be a permutation of the probes")
    _bytes_many_ordered(o, d, ko, kd, visit, right, out)
    return out


def search_varlen(offsets: Any, data: Any, key: bytes, side: Side = "left") -> int:
    """Insertion position of one byte string among sorted variable-length keys."""
    ko, kd = pack_varlen([key])
    return int(search_many_varlen(offsets, data, ko, kd, side)[0])


def lookup_many_varlen(offsets: Any, data: Any, key_offsets: Any, key_data: Any,
                       order: Any = None) -> Positions:
    """Position of a key equal to each probe among sorted variable-length keys, or -1
    (``order`` as in :func:`search_many_varlen`)."""
    positions = search_many_varlen(offsets, data, key_offsets, key_data, "left", order)
    o, d = _varlen(offsets, data, "page")
    ko, kd = _varlen(key_offsets, key_data, "key")
    visit = np.arange(positions.size) if order is None else np.ascontiguousarray(order,
                                                                                 np.int64)
    _bytes_lookup(o, d, ko, kd, visit, positions)
    return positions


class SortedByteKeys:
    """Sorted variable-length keys (Arrow-style offsets + data, e.g. views of pages),
    checked once and then searched one key at a time with one kernel call each.

    The layout is validated at construction (offsets non-decreasing and inside the
    data), so a damaged page can give wrong answers but never an out-of-bounds read.
    """

    def __init__(self, offsets: Any, data: Any) -> None:
        self.offsets, self.data = _varlen(offsets, data, "page")

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def search(self, key: bytes, side: Side = "left") -> int:
        """Insertion position of ``key`` (like :func:`search_varlen`)."""
        right = _check_side(side)
        return int(_bytes_one(self.offsets, self.data, np.frombuffer(key, np.uint8), right))

    def find(self, key: bytes) -> int:
        """Position of a key equal to ``key``, or -1."""
        position: int = _bytes_find(self.offsets, self.data, np.frombuffer(key, np.uint8))
        return position

    def key(self, i: int) -> bytes:
        """Key ``i`` as bytes."""
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes()


__all__: Sequence[str] = [
    "SortedByteKeys", "lookup_many", "lookup_many_varlen", "pack_varlen", "search",
    "search_many", "search_many_varlen", "search_varlen",
]

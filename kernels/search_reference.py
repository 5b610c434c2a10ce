"""Plain reference for :mod:`.search`: ``np.searchsorted`` for numbers and Python's
``bisect`` over ``bytes`` objects for fixed-size and variable-length byte keys."""

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def search_many(haystack: npt.NDArray[Any], keys: npt.NDArray[Any], side: str) -> list[int]:
    """Insertion positions of numeric keys."""
    return [int(p) for p in np.searchsorted(haystack, keys, side=side)]  # type: ignore[call-overload]


def search_many_bytes(haystack: Sequence[bytes], keys: Sequence[bytes], side: str) -> list[int]:
    """Insertion positions of byte-string keys among sorted byte strings."""
    find = bisect.bisect_left if side == "left" else bisect.bisect_right
    return [find(haystack, k) for k in keys]


def lookup_many_bytes(haystack: Sequence[bytes], keys: Sequence[bytes]) -> list[int]:
    """Position of an equal byte string, or -1."""
    out = []
    for k in keys:
        p = bisect.bisect_left(haystack, k)
        out.append(p if p < len(haystack) and haystack[p] == k else -1)
    return out


def lookup_many(haystack: npt.NDArray[Any], keys: npt.NDArray[Any]) -> list[int]:
    """Position of an equal number (NaN equals NaN), or -1."""
    out = []
    for k, p in zip(keys, np.searchsorted(haystack, keys), strict=True):
        hit = p < len(haystack) and (haystack[p] == k or (k != k and haystack[p] != haystack[p]))
        out.append(int(p) if hit else -1)
    return out

"""Plain reference for :mod:`.sort`: Python's stable ``sorted`` over ``bytes`` objects,
numpy's stable argsort for ``uint64`` values."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def argsort(keys: Sequence[bytes]) -> list[int]:
    """Indices that sort ``keys``; equal keys keep their input order."""
    return sorted(range(len(keys)), key=lambda i: keys[i])


def sorted_distinct(keys: Sequence[bytes]) -> list[int]:
    """Index of the last occurrence of each distinct key, in key order."""
    last = {key: i for i, key in enumerate(keys)}
    return [last[key] for key in sorted(last)]


def sort_words(words: Sequence[int]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """``uint64`` values sorted, and the stable permutation that sorts them."""
    values = np.asarray(words, np.uint64)
    order = np.argsort(values, kind="stable").astype(np.int64)
    return values[order], order

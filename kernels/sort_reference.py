"""Plain reference for :mod:`.sort`: Python's stable ``sorted`` over ``bytes`` objects."""

from collections.abc import Sequence


def argsort(keys: Sequence[bytes]) -> list[int]:
    """Indices that sort ``keys``; equal keys keep their input order."""
    return sorted(range(len(keys)), key=lambda i: keys[i])


def sorted_distinct(keys: Sequence[bytes]) -> list[int]:
    """Index of the last occurrence of each distinct key, in key order."""
    last = {key: i for i, key in enumerate(keys)}
    return [last[key] for key in sorted(last)]

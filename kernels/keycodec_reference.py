"""Plain reference for :mod:`.keycodec`: ``bytes`` operations, one value at a time."""

from collections.abc import Sequence


def escape_terminated(values: Sequence[bytes]) -> list[bytes]:
    """Each value with 0x00 written as 0x00 0xFF, then 0x00 0x01."""
    return [v.replace(b"\x00", b"\x00\xff") + b"\x00\x01" for v in values]


def concat_rows(a: Sequence[bytes], b: Sequence[bytes]) -> list[bytes]:
    """``a[i] + b[i]`` for every i."""
    return [x + y for x, y in zip(a, b, strict=True)]

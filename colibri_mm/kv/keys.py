"""Turning user keys and values into bytes, and checking them against the limits."""

from __future__ import annotations

from typing import Any

from ..errors import LimitError

KeyLike = bytes | bytearray | memoryview | str


def as_bytes(value: Any, what: str, limit: int) -> bytes:
    """``value`` as bytes (``str`` is encoded as UTF-8); ``what`` names it in errors."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytearray | memoryview):
        data = bytes(value)
    else:
        raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")
    if len(data) > limit:
        raise LimitError(f"{what} of {len(data)} bytes exceeds the limit of {limit} bytes")
    return data


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def scan_bounds(start: Any, end: Any, prefix: Any,
                limit: int) -> tuple[bytes | None, bytes | None]:
    """``[start, end)`` narrowed by ``prefix``, as bytes (None: unbounded)."""
    low = None if start is None else as_bytes(start, "start", limit)
    high = None if end is None else as_bytes(end, "end", limit)
    if prefix is not None:
        p = as_bytes(prefix, "prefix", limit)
        low = p if low is None or p > low else low
        p_end = prefix_end(p)
        if p_end is not None and (high is None or p_end < high):
            high = p_end
    return low, high

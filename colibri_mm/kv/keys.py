"""Turning user keys and values into bytes, and checking them against the limits.

Keys beginning with byte 0xFF (:data:`SYSTEM_PREFIX`) are the system's: the table
catalog and indexes are stored there, in the same transactional store. ``db.kv``
refuses them and its scans end before them (FoundationDB reserves the same range).
"""

from __future__ import annotations

from typing import Any

from ..errors import LimitError, ReservedKeyError

KeyLike = bytes | bytearray | memoryview | str
SYSTEM_PREFIX = b"\xff"
"""First byte of every system key; user keys may not begin with it."""


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


def user_key(value: Any, what: str, limit: int) -> bytes:
    """``value`` as a user key: bytes within ``limit``, not in the system range."""
    key = as_bytes(value, what, limit)
    if key[:1] == SYSTEM_PREFIX:
        raise ReservedKeyError(f"{what} {key[:16]!r} begins with byte 0xFF, which is "
                               "reserved for the system")
    return key


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def scan_bounds(start: Any, end: Any, prefix: Any,
                limit: int) -> tuple[bytes | None, bytes | None]:
    """``[start, end)`` narrowed by ``prefix``, as bytes (None: unbounded below), and
    ending before the system range."""
    low = None if start is None else as_bytes(start, "start", limit)
    high = None if end is None else as_bytes(end, "end", limit)
    if prefix is not None:
        p = as_bytes(prefix, "prefix", limit)
        low = p if low is None or p > low else low
        p_end = prefix_end(p)
        if p_end is not None and (high is None or p_end < high):
            high = p_end
    if high is None or high > SYSTEM_PREFIX:
        high = SYSTEM_PREFIX
    return low, high

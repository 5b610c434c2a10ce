"""Turning user keys and values into bytes, and checking them against the limits.

The store holds two key spaces: every key of ``db.kv`` is stored after the byte
:data:`USER_PREFIX` (0x00), and the engine's own keys (the table catalog, indexes)
begin with :data:`SYSTEM_PREFIX` (0x01). So any byte string is a valid user key and
no scan of ``db.kv`` can meet a system key. The functions here return keys in that
stored form.
"""

from __future__ import annotations

from typing import Any

from ..errors import LimitError

KeyLike = bytes | bytearray | memoryview | str
USER_PREFIX = b"\x00"
"""First byte of the stored form of every ``db.kv`` key."""
SYSTEM_PREFIX = b"\x01"
TABLE_CHUNKS = SYSTEM_PREFIX + b"\x03"
"""The engine key space of table chunks: the only keys whose values may be extent
descriptors (``colibri_mm.storage.extents``)."""
"""First byte of every key the engine keeps for itself."""


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
    """The stored form of user key ``value`` (bytes or str within ``limit``)."""
    return USER_PREFIX + as_bytes(value, what, limit)


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def scan_bounds(start: Any, end: Any, prefix: Any,
                limit: int) -> tuple[bytes, bytes]:
    """The stored-form bounds ``[low, high)`` of a ``db.kv`` scan of ``[start, end)``
    narrowed by ``prefix`` (None: unbounded), within the user key space."""
    low = b"" if start is None else as_bytes(start, "start", limit)
    high = None if end is None else as_bytes(end, "end", limit)
    if prefix is not None:
        p = as_bytes(prefix, "prefix", limit)
        low = max(low, p)
        p_end = prefix_end(p)
        if p_end is not None and (high is None or p_end < high):
            high = p_end
    return USER_PREFIX + low, SYSTEM_PREFIX if high is None else USER_PREFIX + high

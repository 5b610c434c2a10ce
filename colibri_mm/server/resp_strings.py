"""Handlers of the RESP data commands: strings and the key space.

Each handler takes the request's arguments (command name first), the keys it runs
against (:mod:`colibri_mm.server.resp_store`) and the :class:`DataLimits`, and
returns its reply. A handler that fails returns an :class:`ErrorReply` and writes
nothing: every check comes before the first write, so an error never leaves half a
command in the batch's transaction. Arity was checked before the call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from ..kv.keys import prefix_end
from .resp_glob import GlobPattern
from .resp_protocol import OK, ErrorReply, Reply, SimpleString
from .resp_store import KeyReader, KeyWriter

SYNTAX_ERROR = ErrorReply("ERR syntax error")
NOT_AN_INTEGER = ErrorReply("ERR value is not an integer or out of range")
OVERFLOW = ErrorReply("ERR increment or decrement would overflow")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_INTEGER = re.compile(rb"-?[1-9][0-9]{0,19}|0")
_SCAN_CURSOR_MARK = b"\x01"
"""Byte put before the last key returned to make a SCAN cursor (keeps leading zero
bytes of the key through the conversion to a number)."""


@dataclass(frozen=True)
class DataLimits:
    """What data commands check beyond arity."""

    max_value_bytes: int
    keys_limit: int
    flushdb_enabled: bool


ReadHandler = Callable[[list[bytes], KeyReader, DataLimits], Reply]
WriteHandler = Callable[[list[bytes], KeyWriter, DataLimits], Reply]


def parse_int64(text: bytes) -> int | None:
    """``text`` as a signed 64-bit integer written as Redis writes them (no sign
    but ``-``, no leading zeros or spaces), or None."""
    if _INTEGER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else None


# -- reads ---------------------------------------------------------------------------

def get(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """GET key."""
    return keys.get(args[1])


def mget(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """MGET key [key ...]."""
    return [keys.get(key) for key in args[1:]]


def exists(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """EXISTS key [key ...]: how many of the keys exist (repeats count again)."""
    return sum(keys.get(key) is not None for key in args[1:])


def strlen(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """STRLEN key (0 if missing)."""
    value = keys.get(args[1])
    return 0 if value is None else len(value)


def key_type(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """TYPE key: ``string`` or ``none`` (strings are the only type)."""
    return SimpleString("none" if keys.get(args[1]) is None else "string")


def dbsize(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """DBSIZE: the number of keys."""
    return count_keys(keys)


def count_keys(keys: KeyReader) -> int:
    """The number of keys, counted by a scan (the engine keeps no count)."""
    return sum(1 for _ in keys.scan(b"", None))


def keys_matching(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """KEYS pattern, refused when more than ``keys_limit`` keys match."""
    pattern = GlobPattern(args[1])
    found: list[Reply] = []
    for key, _ in keys.scan(*_pattern_range(pattern, b"")):
        if pattern.matches(key):
            if len(found) == limits.keys_limit:
                return ErrorReply(f"ERR KEYS would return more than keys_limit "
                                  f"({limits.keys_limit}) keys; use SCAN")
            found.append(key)
    return found


def scan(args: list[bytes], keys: KeyReader, limits: DataLimits) -> Reply:
    """SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].

    The cursor is the last key visited, as a decimal number (clients such as
    redis-py parse cursors as integers); 0 starts and ends. A call visits at most
    COUNT keys (default 10) in key order and returns those that match, so a page may
    be empty while the cursor is not 0. Keys written during an iteration after the
    cursor are seen by its later calls; none is returned twice.
    """
    start = _scan_start(args[1])
    if start is None:
        return ErrorReply("ERR invalid cursor")
    pattern: GlobPattern | None = None
    count = 10
    wanted_type: bytes | None = None
    options = iter(args[2:])
    for option in options:
        value = next(options, None)
        if value is None:
            return SYNTAX_ERROR
        name = option.lower()
        if name == b"match":
            pattern = GlobPattern(value)
        elif name == b"count":
            parsed = parse_int64(value)
            if parsed is None:
                return NOT_AN_INTEGER
            if parsed < 1:
                return SYNTAX_ERROR
            count = parsed
        elif name == b"type":
            wanted_type = value.lower()
        else:
            return SYNTAX_ERROR
    low, high = _pattern_range(pattern, start) if pattern is not None else (start, None)
    visited = list(islice(keys.scan(low, high), count + 1))
    more = len(visited) > count
    page = [key for key, _ in visited[:count]
            if (pattern is None or pattern.matches(key)) and wanted_type in (None, b"string")]
    cursor = str(int.from_bytes(_SCAN_CURSOR_MARK + visited[count - 1][0], "big")).encode() \
        if more else b"0"
    return [cursor, list[Reply](page)]


def _scan_start(cursor: bytes) -> bytes | None:
    """The first key a SCAN with ``cursor`` may visit (None: an invalid cursor)."""
    if cursor == b"0":
        return b""
    if not cursor.isdigit():
        return None
    number = int(cursor)
    encoded = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if not encoded.startswith(_SCAN_CURSOR_MARK):
        return None
    return encoded[1:] + b"\x00"  # the smallest key after the last one visited


def _pattern_range(pattern: GlobPattern, start: bytes) -> tuple[bytes, bytes | None]:
    """The key range a scan from ``start`` for ``pattern`` needs (its literal prefix
    narrows it)."""
    prefix = pattern.literal_prefix
    if not prefix:
        return start, None
    return max(start, prefix), prefix_end(prefix)


# -- writes --------------------------------------------------------------------------

def set_value(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """SET key value [NX | XX] [GET]; expiry options are refused (keys never expire)."""
    condition: bytes | None = None
    return_old = False
    options = iter(args[3:])
    for option in options:
        name = option.lower()
        if name in (b"nx", b"xx") and condition in (None, name):
            condition = name
        elif name == b"get":
            return_old = True
        elif name in (b"ex", b"px", b"exat", b"pxat"):
            if next(options, None) is None:
                return SYNTAX_ERROR
            return _no_expiry()
        elif name == b"keepttl":
            return _no_expiry()
        else:
            return SYNTAX_ERROR
    key = args[1]
    old = keys.get(key) if condition is not None or return_old else None
    if (condition == b"nx" and old is not None) or (condition == b"xx" and old is None):
        return old if return_old else None
    keys.put(key, args[2])
    return old if return_old else OK


def _no_expiry() -> ErrorReply:
    return ErrorReply("ERR SET options EX, PX, EXAT, PXAT and KEEPTTL are not supported: "
                      "colibri-mm keys do not expire")


def mset(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """MSET key value [key value ...]."""
    if len(args) % 2 == 0:
        return ErrorReply("ERR wrong number of arguments for 'mset' command")
    for i in range(1, len(args), 2):
        keys.put(args[i], args[i + 1])
    return OK


def delete(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """DEL key [key ...]: how many existed."""
    return sum(keys.delete(key) for key in args[1:])


def getdel(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """GETDEL key: the value (or nil), and the key deleted."""
    value = keys.get(args[1])
    if value is not None:
        keys.delete(args[1])
    return value


def append(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """APPEND key value: the new length."""
    value = (keys.get(args[1]) or b"") + args[2]
    if len(value) > limits.max_value_bytes:
        return ErrorReply(f"ERR string exceeds maximum allowed size (max_value_bytes "
                          f"{limits.max_value_bytes})")
    keys.put(args[1], value)
    return len(value)


def incr(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """INCR key."""
    return _add(keys, args[1], 1)


def decr(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """DECR key."""
    return _add(keys, args[1], -1)


def incrby(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """INCRBY key increment."""
    step = parse_int64(args[2])
    return NOT_AN_INTEGER if step is None else _add(keys, args[1], step)


def decrby(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """DECRBY key decrement."""
    step = parse_int64(args[2])
    if step is None:
        return NOT_AN_INTEGER
    if step == INT64_MIN:
        return ErrorReply("ERR decrement would overflow")
    return _add(keys, args[1], -step)


def _add(keys: KeyWriter, key: bytes, step: int) -> Reply:
    """Add ``step`` to the integer stored at ``key`` (missing: 0); the new value."""
    old = keys.get(key)
    current = 0 if old is None else parse_int64(old)
    if current is None:
        return NOT_AN_INTEGER
    new = current + step
    if not INT64_MIN <= new <= INT64_MAX:
        return OVERFLOW
    keys.put(key, b"%d" % new)
    return new


def flushdb(args: list[bytes], keys: KeyWriter, limits: DataLimits) -> Reply:
    """FLUSHDB [ASYNC | SYNC]: delete every key (only when enabled)."""
    if len(args) == 2 and args[1].lower() not in (b"async", b"sync"):
        return SYNTAX_ERROR
    if not limits.flushdb_enabled:
        return ErrorReply("ERR FLUSHDB is disabled on this server (flushdb_enabled is false)")
    keys.delete_all()
    return OK

"""Plain reference for :mod:`.changes`: ``struct`` over ``bytes``, one record at a time."""

import struct
from collections.abc import Sequence


def decode_changes(records: Sequence[bytes],
                   kinds: tuple[int, int]) -> list[tuple[int, bytes, bytes]] | int:
    """``(kind, key, value)`` of every change, or the index of the first bad record."""
    out: list[tuple[int, bytes, bytes]] = []
    for r, record in enumerate(records):
        if len(record) < 4:
            return r
        (n,) = struct.unpack_from("<I", record)
        if len(record) < 4 + 9 * n:
            return r
        kind_list = list(record[4 : 4 + n])
        key_lengths = struct.unpack_from(f"<{n}I", record, 4 + n)
        value_lengths = struct.unpack_from(f"<{n}I", record, 4 + 5 * n)
        if any(k not in kinds for k in kind_list) or \
                4 + 9 * n + sum(key_lengths) + sum(value_lengths) != len(record):
            return r
        position = 4 + 9 * n
        keys = []
        for length in key_lengths:
            keys.append(record[position : position + length])
            position += length
        for kind, key, length in zip(kind_list, keys, value_lengths, strict=True):
            out.append((kind, key, record[position : position + length]))
            position += length
    return out

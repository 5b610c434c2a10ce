"""Primary keys as order-preserving byte strings (memcomparable encoding).

A key of one or more columns becomes a byte string that compares, as bytes, like
the tuple of its values, so it can live in the sorted store and be found with the
search kernels. Per part:

- signed integers (also date32, time64, timestamp): big-endian, sign bit flipped;
- unsigned integers: big-endian; bool: one byte 0 or 1;
- decimal128: the 16-byte two's complement big-endian, sign bit flipped;
- fixed_size_binary: the bytes as they are;
- string and binary: UTF-8 / the bytes; when not the last part, escaped and
  terminated (:func:`~colibri_mm.kernels.keycodec.escape_terminated`) so a shorter
  value sorts first whatever follows it.

:func:`encode_keys` encodes whole columns with numpy and the key kernels;
:func:`encode_key` encodes one tuple of Python values with ``struct`` (for point
lookups); the two give the same bytes (tested).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConstraintError, CorruptionError
from ..kernels.keycodec import Varlen, concat_rows, escape_terminated

_EPOCH_DATE = datetime.date(1970, 1, 1)


_DECIMAL_EXACT = decimal.Context(prec=40)
"""Enough digits for any decimal128 (38) to scale without rounding."""

def encode_keys(rows: pa.Table | pa.RecordBatch, columns: Sequence[str]) -> Varlen:
    """The encoded key of every row as Arrow-style ``(offsets, data)``.

    Raises :class:`ConstraintError` naming the column and row of a null key part.
    """
    encoded: Varlen | None = None
    for position, name in enumerate(columns):
        column = rows.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if column.null_count:
            row = column.is_null().index(True).as_py()
            raise ConstraintError(f"primary key column {name!r} is null in row {row}")
        part = _encode_column(column, last=position == len(columns) - 1)
        encoded = part if encoded is None else concat_rows(encoded, part)
    assert encoded is not None
    return encoded


def encode_index_keys(rows: pa.Table | pa.RecordBatch, columns: Sequence[str]) -> Varlen:
    """The secondary-index form of the ``columns`` values of every row: each part is a
    presence byte (0 for null, 1 otherwise) and the value's encoding, terminated even
    when last (the row's primary key follows it in an index entry). Nulls sort first."""
    encoded: Varlen | None = None
    for name in columns:
        column = rows.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        valid = column.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)
        if column.null_count:
            column = column.fill_null(_filler(column.type))
        part = concat_rows(_fixed(valid.reshape(-1, 1)), _encode_column(column, last=False))
        encoded = part if encoded is None else concat_rows(encoded, part)
    assert encoded is not None
    return encoded


def encode_index_values(schema: pa.Schema, columns: Sequence[str],
                        values: Sequence[Any]) -> bytes:
    """One tuple of values in the form of :func:`encode_index_keys` (None: null)."""
    if len(values) != len(columns):
        raise ValueError(f"the index has {len(columns)} columns ({', '.join(columns)}); "
                         f"got {len(values)} values")
    parts = []
    for name, value in zip(columns, values, strict=True):
        kind = schema.field(name).type
        present = value is not None
        try:
            parts.append((b"\x01" if present else b"\x00") + _encode_value(
                kind, value if present else _filler(kind).as_py(), last=False))
        except (TypeError, ValueError, OverflowError, struct.error,
                decimal.InvalidOperation) as e:
            raise type(e)(f"index column {name!r}: {value!r} does not fit type {kind} "
                          f"({e})") from None
    return b"".join(parts)


def _filler(kind: pa.DataType) -> pa.Scalar:
    """A value of type ``kind`` standing in for null (after the 0 presence byte)."""
    t = pa.types
    if t.is_string(kind) or t.is_large_string(kind):
        return pa.scalar("", kind)
    if t.is_binary(kind) or t.is_large_binary(kind):
        return pa.scalar(b"", kind)
    if t.is_fixed_size_binary(kind):
        return pa.scalar(bytes(kind.byte_width), kind)
    if t.is_boolean(kind):
        return pa.scalar(False)
    if t.is_decimal128(kind):
        return pa.scalar(decimal.Decimal(0), kind)
    if t.is_date32(kind):
        return pa.scalar(0, pa.int32()).cast(kind)
    return pa.scalar(0, pa.int64()).cast(kind)


def _fixed(matrix: np.ndarray) -> Varlen:
    n, width = matrix.shape
    return (np.arange(n + 1, dtype=np.int64) * width,
            np.ascontiguousarray(matrix).reshape(-1).view(np.uint8))


def _encode_column(column: pa.Array, last: bool) -> Varlen:
    kind = column.type
    t = pa.types
    n = len(column)
    if t.is_boolean(kind):
        return _fixed(column.to_numpy(zero_copy_only=False).astype(np.uint8).reshape(n, 1))
    if t.is_signed_integer(kind) or t.is_date32(kind) or t.is_time64(kind) or \
            t.is_timestamp(kind):
        width = kind.bit_width // 8
        raw = np.frombuffer(column.buffers()[1], f"<u{width}", n, column.offset * width)
        flipped = raw ^ np.array(1 << (8 * width - 1), raw.dtype)
        return _fixed(flipped.astype(f">u{width}").view(np.uint8).reshape(n, width))
    if t.is_unsigned_integer(kind):
        width = kind.bit_width // 8
        raw = np.frombuffer(column.buffers()[1], f"<u{width}", n, column.offset * width)
        return _fixed(raw.astype(f">u{width}").view(np.uint8).reshape(n, width))
    if t.is_decimal128(kind):
        raw = np.frombuffer(column.buffers()[1], np.uint8, 16 * n, 16 * column.offset)
        big = raw.reshape(n, 16)[:, ::-1].copy()
        big[:, 0] ^= 0x80
        return _fixed(big)
    if t.is_fixed_size_binary(kind):
        width = kind.byte_width
        raw = np.frombuffer(column.buffers()[1], np.uint8, width * n, width * column.offset)
        return _fixed(raw.reshape(n, width))
    if t.is_string(kind) or t.is_binary(kind) or t.is_large_string(kind) or \
            t.is_large_binary(kind):
        offset_type = np.int64 if t.is_large_string(kind) or t.is_large_binary(kind) \
            else np.int32
        offsets = np.frombuffer(column.buffers()[1], offset_type, n + 1,
                                column.offset * np.dtype(offset_type).itemsize)
        data_buffer = column.buffers()[2]
        data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None and \
            data_buffer.size else np.empty(0, np.uint8)
        varlen = (offsets.astype(np.int64) - int(offsets[0]), data[int(offsets[0]):])
        return varlen if last else escape_terminated(*varlen)
    raise TypeError(f"a key column cannot have type {kind}")


def encode_key(schema: pa.Schema, columns: Sequence[str], values: Sequence[Any]) -> bytes:
    """The encoded key of one tuple of Python values (as :func:`encode_keys` would).

    Raises :class:`ConstraintError` for a missing value and ``TypeError`` or
    ``ValueError`` naming the column for a value of the wrong type.
    """
    if len(values) != len(columns):
        raise ValueError(f"the primary key has {len(columns)} columns "
                         f"({', '.join(columns)}); got {len(values)} values")
    parts = []
    for position, (name, value) in enumerate(zip(columns, values, strict=True)):
        if value is None:
            raise ConstraintError(f"primary key column {name!r} is None")
        try:
            parts.append(_encode_value(schema.field(name).type, value,
                                       last=position == len(columns) - 1))
        except (TypeError, ValueError, OverflowError, struct.error,
                decimal.InvalidOperation) as e:
            raise type(e)(f"primary key column {name!r}: {value!r} does not fit type "
                          f"{schema.field(name).type} ({e})") from None
    return b"".join(parts)


_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _encode_value(kind: pa.DataType, value: Any, last: bool) -> bytes:
    t = pa.types
    if t.is_boolean(kind):
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"expected a bool, got {type(value).__name__}")
        return b"\x01" if value else b"\x00"
    if t.is_integer(kind) or t.is_date32(kind) or t.is_time64(kind) or t.is_timestamp(kind):
        number = _as_integer(kind, value)
        width: int = kind.bit_width // 8
        if t.is_unsigned_integer(kind):
            return number.to_bytes(width, "big")
        return (number + (1 << (8 * width - 1))).to_bytes(width, "big")
    if t.is_decimal128(kind):
        # Exact for all 38 digits (the default context rounds to 28).
        scaled = pa.scalar(value, kind).as_py().scaleb(kind.scale, _DECIMAL_EXACT)
        return (int(scaled) + (1 << 127)).to_bytes(16, "big")
    if t.is_fixed_size_binary(kind):
        data = bytes(value)
        if len(data) != kind.byte_width:
            raise ValueError(f"expected {kind.byte_width} bytes, got {len(data)}")
        return data
    if t.is_string(kind) or t.is_large_string(kind):
        if not isinstance(value, str):
            raise TypeError(f"expected a str, got {type(value).__name__}")
        data = value.encode("utf-8")
    elif t.is_binary(kind) or t.is_large_binary(kind):
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"expected bytes, got {type(value).__name__}")
        data = bytes(value)
    else:
        raise TypeError(f"a key column cannot have type {kind}")
    return data if last else data.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _as_integer(kind: pa.DataType, value: Any) -> int:
    """The stored integer of a value of an integer, date or time type."""
    if pa.types.is_integer(kind):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"expected an int, got {type(value).__name__}")
        number = int(value)
        width = kind.bit_width
        low, high = (0, 1 << width) if pa.types.is_unsigned_integer(kind) else \
            (-(1 << (width - 1)), 1 << (width - 1))
        if not low <= number < high:
            raise OverflowError(f"{number} is out of range")
        return number
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    stored: Any = pa.scalar(value, kind).cast(pa.int64() if kind.bit_width == 64
                                              else pa.int32())
    return int(stored.as_py())


def key_numbers(table: str, keys: Varlen, skip: int, count: int) -> np.ndarray:
    """The ``count`` u32 big-endian numbers after the first ``skip`` bytes of each of
    a table's engine keys (all ``skip + 4 * count`` bytes long: chunk, row, seq
    numbers), as an int64 array of ``count`` columns."""
    offsets, data = keys
    width = skip + 4 * count
    if (np.diff(offsets) != width).any():
        raise CorruptionError(f"table {table!r}: a stored key has the wrong length")
    numbers = data.reshape(-1, width)[:, skip:].copy().view(">u4")
    return numbers.astype(np.int64).reshape(-1, count)

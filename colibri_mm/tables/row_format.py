"""One table row as one stored value (the form of a table's tail rows, :mod:`.tail`):
made from Arrow columns and read back into Arrow columns for many rows at once, with
numpy, never value by value.

A row is a header (column count ``<u2``, then a null bitmap, bit ``i`` of byte
``i // 8`` set when column ``i`` holds a value), then a *fixed part* of the same size
for every row of the schema (each column's bytes as Arrow stores them: a value of a
fixed-width type little-endian, a bool as one byte 0 or 1, and for a variable-length
column its length as ``<u4``), then the bytes of the variable-length columns in
column order. A dictionary column is stored by value. Byte layout: ``docs/FORMAT.md``
section 8.1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import CorruptionError
from ..kernels.keycodec import Varlen
from ..kernels.sort import gather_slices

_FIXED, _BOOL, _VAR = 0, 1, 2


@dataclass(frozen=True)
class _Column:
    kind: int
    offset: int
    width: int
    value_type: pa.DataType
    """The type the bytes are read as (a dictionary column's value type)."""


@dataclass(frozen=True)
class _Layout:
    columns: tuple[_Column, ...]
    bitmap_bytes: int
    fixed_size: int


@functools.lru_cache(maxsize=256)
def _layout(schema: pa.Schema) -> _Layout:
    bitmap_bytes = (len(schema) + 7) // 8
    offset = 2 + bitmap_bytes
    columns = []
    for field in schema:
        value_type = field.type.value_type if pa.types.is_dictionary(field.type) \
            else field.type
        if pa.types.is_boolean(value_type):
            kind, width = _BOOL, 1
        elif _is_var(value_type):
            kind, width = _VAR, 4
        else:
            kind, width = _FIXED, value_type.bit_width // 8
        columns.append(_Column(kind, offset, width, value_type))
        offset += width
    return _Layout(tuple(columns), bitmap_bytes, offset)


def _is_var(kind: pa.DataType) -> bool:
    t = pa.types
    return bool(t.is_string(kind) or t.is_large_string(kind) or t.is_binary(kind) or
                t.is_large_binary(kind))


def encode_rows(rows: pa.Table) -> list[bytes]:
    """Each row of ``rows`` (already of the table's schema) in its stored form.

    Tail writes are a few rows, so this goes row by row over the Arrow buffers (a
    numpy pass costs more per call than it saves); reading back is the bulk side."""
    layout = _layout(rows.schema)
    count = len(rows.schema).to_bytes(2, "little")
    columns = [_ColumnBytes(column, spec) for column, spec in
               zip(rows.columns, layout.columns, strict=True)]
    encoded = []
    for r in range(rows.num_rows):
        bitmap = 0
        fixed = []
        var = []
        for i, column in enumerate(columns):
            value = column.value(r)
            if value is None:
                fixed.append(column.null)
                continue
            bitmap |= 1 << i
            if column.spec.kind == _VAR:
                fixed.append(len(value).to_bytes(4, "little"))
                var.append(value)
            else:
                fixed.append(value)
        encoded.append(b"".join([count, bitmap.to_bytes(layout.bitmap_bytes, "little"),
                                 *fixed, *var]))
    return encoded


class _ColumnBytes:
    """The stored bytes of one column's values, read from its Arrow buffers."""

    def __init__(self, column: pa.ChunkedArray, spec: _Column) -> None:
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        if spec.value_type != array.type:
            array = array.dictionary_decode()
        self.spec = spec
        self.null = bytes(spec.width)
        buffers = array.buffers()
        self._offset = array.offset
        self._validity = memoryview(buffers[0]) if array.null_count else None
        self._values = memoryview(buffers[1]) if buffers[1] is not None else memoryview(b"")
        self._data = memoryview(b"")
        if spec.kind == _VAR:
            large = spec.value_type in (pa.large_string(), pa.large_binary())
            self._values = self._values.cast("q" if large else "i")
            if buffers[2] is not None:
                self._data = memoryview(buffers[2])

    def value(self, row: int) -> bytes | None:
        """Row ``row``'s bytes (a variable-length value without its length), or None
        for a null."""
        at = self._offset + row
        if self._validity is not None and not (self._validity[at >> 3] >> (at & 7)) & 1:
            return None
        spec = self.spec
        if spec.kind == _FIXED:
            return self._values[at * spec.width : (at + 1) * spec.width].tobytes()
        if spec.kind == _BOOL:
            return b"\x01" if (self._values[at >> 3] >> (at & 7)) & 1 else b"\x00"
        return self._data[self._values[at] : self._values[at + 1]].tobytes()


def decode_rows(schema: pa.Schema, values: Varlen, where: str) -> pa.Table:
    """Rows stored by :func:`encode_rows` (Arrow-style ``(offsets, data)``), as a table
    of ``schema``; damage raises :class:`CorruptionError` naming ``where``."""
    layout = _layout(schema)
    offsets, blob = values
    n = offsets.size - 1
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    if n and lengths.min() < layout.fixed_size:
        raise CorruptionError(f"{where}: a stored row is shorter than its fixed part")
    fixed = blob[starts[:, None] + np.arange(layout.fixed_size)]
    if (fixed[:, 0].astype(np.int64) | (fixed[:, 1].astype(np.int64) << 8)
            != len(schema)).any():
        raise CorruptionError(f"{where}: a stored row has another number of columns "
                              f"than the table's {len(schema)}")
    valid = np.unpackbits(fixed[:, 2 : 2 + layout.bitmap_bytes], axis=1,
                          bitorder="little")[:, : len(schema)].astype(bool)
    sizes = {i: fixed[:, spec.offset : spec.offset + 4].copy().view("<u4")[:, 0]
             .astype(np.int64) for i, spec in enumerate(layout.columns) if spec.kind == _VAR}
    if (sum(sizes.values(), np.zeros(n, np.int64)) != lengths - layout.fixed_size).any():
        raise CorruptionError(f"{where}: a stored row's length does not match its columns")
    var_at = starts + layout.fixed_size
    arrays = []
    for i, (field, spec) in enumerate(zip(schema, layout.columns, strict=True)):
        if not field.nullable and not valid[:, i].all():
            raise CorruptionError(f"{where}: a stored row has a null in column "
                                  f"{field.name!r}, which is not nullable")
        validity = None if valid[:, i].all() else pa.py_buffer(
            np.packbits(valid[:, i], bitorder="little"))
        # Copies, never views of ``fixed``: a column at an odd offset of the row would
        # not be aligned for Arrow.
        part = fixed[:, spec.offset : spec.offset + spec.width].copy()
        if spec.kind == _BOOL:
            buffers = [validity, pa.py_buffer(np.packbits(part[:, 0] != 0,
                                                          bitorder="little"))]
        elif spec.kind == _FIXED:
            buffers = [validity, pa.py_buffer(part)]
        else:
            offsets, data = gather_slices(var_at, sizes[i], blob, np.arange(n))
            var_at = var_at + sizes[i]
            dtype = np.int64 if spec.value_type in (pa.large_string(), pa.large_binary()) \
                else np.int32
            if dtype == np.int32 and offsets[-1] >= 2**31:
                raise CorruptionError(f"{where}: a stored column is too long")
            buffers = [validity, pa.py_buffer(offsets.astype(dtype)), pa.py_buffer(data)]
        array = pa.Array.from_buffers(spec.value_type, n, buffers)
        if spec.kind == _VAR:
            try:
                array.validate(full=True)  # UTF-8 of strings
            except pa.ArrowInvalid as e:
                raise CorruptionError(f"{where}: column {field.name!r} holds a damaged "
                                      f"value ({e})") from None
        arrays.append(_as_dictionary(array, field.type)
                      if pa.types.is_dictionary(field.type) else array)
    return pa.Table.from_arrays(arrays, schema=schema)


def _as_dictionary(values: pa.Array, kind: pa.DictionaryType) -> pa.Array | pa.ChunkedArray:
    """``values`` dictionary-encoded as ``kind``. Rows of several writes may hold more
    distinct values than ``kind``'s indices can number (each write alone fitting):
    then in pieces of at most that many rows, each with its own dictionary."""
    encoded = values.dictionary_encode()
    index = kind.index_type
    numbered = 1 << (index.bit_width - (0 if pa.types.is_unsigned_integer(index) else 1))
    if len(encoded.dictionary) <= numbered:
        return encoded.cast(kind)
    return pa.chunked_array([values.slice(start, numbered).dictionary_encode().cast(kind)
                             for start in range(0, len(values), numbered)], kind)

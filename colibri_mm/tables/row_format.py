"""One table row as one stored value (the form of a table's tail rows, :mod:`.tail`):
made from Arrow columns and read back into Arrow columns for many rows at once, with
numpy, never value by value. An update of one row works on its *cells* instead (each
column's stored bytes, :data:`Cells`): read from the old row's Arrow buffers or split
from its stored form, changed, and joined, with no Arrow array made for the row.

A row is a header (column count ``<u2``, then a null bitmap, bit ``i`` of byte
``i // 8`` set when column ``i`` holds a value), then a *fixed part* of the same size
for every row of the schema (each column's bytes as Arrow stores them: a value of a
fixed-width type little-endian, a bool as one byte 0 or 1, and for a variable-length
column its length as ``<u4``), then the bytes of the variable-length columns in
column order. A dictionary column is stored by value. Byte layout: ``docs/FORMAT.md``
section 8.1.
"""

from __future__ import annotations

import datetime
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..errors import CorruptionError
from ..kernels.keycodec import Varlen
from ..kernels.sort import gather_slices

_FIXED, _BOOL, _VAR = 0, 1, 2

Cells = list[bytes | None]
"""One row's columns in their stored form (a variable-length value without its
length), None for a null: what :meth:`RowLayout.encode` joins into a stored row."""

IntegerFormat = Literal["b", "B", "h", "H", "i", "I", "q", "Q"]
"""memoryview formats of integers."""
_INDEX_FORMATS: dict[tuple[int, bool], IntegerFormat] = {
    (8, True): "b", (8, False): "B", (16, True): "h", (16, False): "H",
    (32, True): "i", (32, False): "I", (64, True): "q", (64, False): "Q"}
"""memoryview formats of dictionary indices by (bit width, signed)."""
NumberFormat = IntegerFormat | Literal["f", "d"]
"""memoryview formats of numbers."""
NUMBER_FORMATS: dict[pa.DataType, NumberFormat] = {
    pa.int8(): "b", pa.int16(): "h", pa.int32(): "i", pa.int64(): "q", pa.uint8(): "B",
    pa.uint16(): "H", pa.uint32(): "I", pa.uint64(): "Q", pa.float32(): "f", pa.float64(): "d"}
"""memoryview formats of the number types (``struct`` formats with ``<``), whose
values Python reads exactly as ``as_py`` gives them; :func:`number_cell` also packs
them, except float32 (a Python float may not fit one)."""
_EPOCH = datetime.datetime(1970, 1, 1)
_TIME_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
"""Timestamp units whose values without a time zone ``as_py`` gives as the epoch plus
a ``timedelta`` of that unit (nanoseconds it may give as a pandas ``Timestamp``)."""


def naive_timestamp(kind: pa.DataType) -> Callable[[int], datetime.datetime] | None:
    """What turns a stored number of ``kind`` into the ``datetime`` ``as_py`` gives,
    for a timestamp in s, ms or us without a time zone; None for any other type."""
    if not pa.types.is_timestamp(kind) or kind.tz is not None or \
            kind.unit not in _TIME_UNITS:
        return None
    unit = _TIME_UNITS[kind.unit]
    return lambda number: _EPOCH + datetime.timedelta(**{unit: number})


def _cell_reader(kind: pa.DataType) -> Callable[[bytes], Any] | None:
    """What turns a cell of type ``kind`` into the Python value ``as_py`` gives
    (numbers, booleans, strings, binaries, timestamps without a time zone); None for
    any other type."""
    t = pa.types
    code = NUMBER_FORMATS.get(kind)
    if code is not None:
        unpack = struct.Struct("<" + code).unpack
        return lambda cell: unpack(cell)[0]
    stamp = naive_timestamp(kind)
    if stamp is not None:
        unpack_time = struct.Struct("<q").unpack
        return lambda cell: stamp(unpack_time(cell)[0])
    if t.is_boolean(kind):
        return lambda cell: cell != b"\x00"
    if t.is_string(kind) or t.is_large_string(kind):
        return lambda cell: cell.decode("utf-8")
    if t.is_binary(kind) or t.is_large_binary(kind) or t.is_fixed_size_binary(kind):
        return bytes
    return None


@dataclass(frozen=True)
class _Column:
    kind: int
    offset: int
    width: int
    value_type: pa.DataType
    """The type the bytes are read as (a dictionary column's value type)."""
    nullable: bool
    large: bool
    """A variable-length column with 64-bit offsets."""
    utf8: bool
    """A string column (its bytes must be UTF-8)."""
    number: tuple[type, struct.Struct] | None
    """For a number column but float32 (:data:`NUMBER_FORMATS`): the Python type
    :func:`number_cell` packs, and how."""


def number_cell(spec: _Column, value: Any) -> bytes | None:
    """The cell of ``value`` if it is a Python int for an integer column (in its
    range) or a float for a float64 column; None for any other value, which Arrow
    converts (and refuses with its own words)."""
    number = spec.number
    if number is None or type(value) is not number[0]:
        return None
    try:
        return number[1].pack(value)
    except struct.error:
        return None


@dataclass(frozen=True)
class RowLayout:
    """Where each column of ``schema``'s rows lies in the stored form."""

    schema: pa.Schema
    columns: tuple[_Column, ...]
    bitmap_bytes: int
    fixed_size: int
    readers: tuple[Callable[[bytes], Any], ...] | None
    """Each column's cell as its Python value (see :meth:`python_values`); None when
    a column's type is not one read this way."""

    def python_values(self, cells: Cells) -> list[Any]:
        """``cells`` as the Python values Arrow's ``as_py`` gives, without making
        Arrow arrays (every column's type must be read this way: :attr:`readers`)."""
        assert self.readers is not None
        return [None if cell is None else read(cell)
                for read, cell in zip(self.readers, cells, strict=True)]

    def encode(self, cells: Cells) -> bytes:
        """The stored form of one row of ``cells``."""
        bitmap = 0
        fixed = []
        var = []
        for i, (spec, cell) in enumerate(zip(self.columns, cells, strict=True)):
            if cell is None:
                fixed.append(bytes(spec.width))
                continue
            bitmap |= 1 << i
            if spec.kind == _VAR:
                fixed.append(len(cell).to_bytes(4, "little"))
                var.append(cell)
            else:
                fixed.append(cell)
        return b"".join([len(self.columns).to_bytes(2, "little"),
                         bitmap.to_bytes(self.bitmap_bytes, "little"), *fixed, *var])

    def cells(self, row: bytes, where: str) -> Cells:
        """The cells of stored row ``row``; damage raises :class:`CorruptionError`
        naming ``where`` (the checks of :func:`decode_rows`, which words the error)."""
        cells = self._split(row)
        if cells is None:
            decode_rows(self.schema, (np.array([0, len(row)], np.int64),
                                      np.frombuffer(row, np.uint8)), where)
            raise AssertionError("decode_rows accepted a row found damaged")
        return cells

    def _split(self, row: bytes) -> Cells | None:
        """The cells of ``row``, or None if it is damaged."""
        if len(row) < self.fixed_size or \
                int.from_bytes(row[:2], "little") != len(self.columns):
            return None
        bitmap = int.from_bytes(row[2 : 2 + self.bitmap_bytes], "little")
        cells: Cells = []
        at = self.fixed_size
        for i, spec in enumerate(self.columns):
            present = (bitmap >> i) & 1
            if not present and not spec.nullable:
                return None
            if spec.kind != _VAR:
                cells.append(row[spec.offset : spec.offset + spec.width] if present else None)
                continue
            size = int.from_bytes(row[spec.offset : spec.offset + 4], "little")
            if size >= 1 << 31 and not spec.large:
                return None
            cell = row[at : at + size]
            at += size
            if spec.utf8:
                try:
                    cell.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            cells.append(cell if present else None)
        return cells if at == len(row) else None


@functools.lru_cache(maxsize=256)
def _layout(schema: pa.Schema) -> RowLayout:
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
        t = pa.types
        number = NUMBER_FORMATS.get(field.type)
        columns.append(_Column(kind, offset, width, value_type, field.nullable,
                               t.is_large_string(value_type) or t.is_large_binary(value_type),
                               t.is_string(value_type) or t.is_large_string(value_type),
                               None if number in (None, "f") else
                               (float if number == "d" else int, struct.Struct(f"<{number}"))))
        offset += width
    readers = [_cell_reader(column.value_type) for column in columns]
    return RowLayout(schema, tuple(columns), bitmap_bytes, offset,
                     None if None in readers else tuple(r for r in readers if r is not None))


def row_layout(schema: pa.Schema) -> RowLayout:
    """The layout of rows of ``schema`` (made once per schema)."""
    return _layout(schema)


def _is_var(kind: pa.DataType) -> bool:
    t = pa.types
    return bool(t.is_string(kind) or t.is_large_string(kind) or t.is_binary(kind) or
                t.is_large_binary(kind))


def encode_rows(rows: pa.Table) -> list[bytes]:
    """Each row of ``rows`` (already of the table's schema) in its stored form.

    Tail writes are a few rows, so this goes row by row over the Arrow buffers (a
    numpy pass costs more per call than it saves); reading back is the bulk side."""
    layout = _layout(rows.schema)
    columns = [ColumnBytes(column.chunk(0) if column.num_chunks == 1
                           else column.combine_chunks(), spec)
               for column, spec in zip(rows.columns, layout.columns, strict=True)]
    return [layout.encode([column.value(r) for column in columns])
            for r in range(rows.num_rows)]


class ColumnBytes:
    """The stored bytes of one column's values, read from an Arrow array's buffers
    (a dictionary column's through its indices: nothing is decoded up front)."""

    def __init__(self, array: pa.Array, spec: _Column) -> None:
        self.spec = spec
        self._dictionary: ColumnBytes | None = None
        if pa.types.is_dictionary(array.type):
            self._dictionary = ColumnBytes(array.dictionary, spec)
            index = array.type.index_type
            index_format = _INDEX_FORMATS[index.bit_width,
                                          pa.types.is_signed_integer(index)]
            array = array.indices
        buffers = array.buffers()
        self._offset = array.offset
        self._validity = memoryview(buffers[0]) if array.null_count else None
        self._values = memoryview(buffers[1]) if buffers[1] is not None else memoryview(b"")
        self._data = memoryview(b"")
        if self._dictionary is not None:
            self._values = self._values.cast(index_format)
        elif spec.kind == _VAR:
            self._values = self._values.cast("q" if spec.large else "i")
            if buffers[2] is not None:
                self._data = memoryview(buffers[2])

    def value(self, row: int) -> bytes | None:
        """Row ``row``'s bytes (a variable-length value without its length), or None
        for a null."""
        at = self._offset + row
        if self._validity is not None and not (self._validity[at >> 3] >> (at & 7)) & 1:
            return None
        if self._dictionary is not None:
            return self._dictionary.value(self._values[at])
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
            dtype = np.int64 if spec.large else np.int32
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

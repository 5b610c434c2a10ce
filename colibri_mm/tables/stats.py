"""Per-chunk, per-column statistics (null count, minimum, maximum) and the chunks a
filter can skip because of them.

Each chunk's statistics are the value of key ``01 0B table_id chunk``, written with
the chunk and deleted with it. Minimum and maximum are kept for columns of numeric,
temporal and bool types as float64 bounds, rounded outwards so they always bound the
true values (an int64 beyond 2**53 gets the nearest float on the safe side); a
chunk whose column is all null or NaN has none. Deleted rows do not change a
chunk's statistics: bounds of the stored rows still bound the live ones.

A filter is used for skipping when it is a comparison of a column with a number
(``pc.field("x") > 0.5``; ``<``, ``<=``, ``>``, ``>=``, ``==``) or an ``&`` of such
comparisons. pyarrow expressions cannot be taken apart, so the filter's text is
parsed and the comparisons it names are rebuilt and checked to equal the filter
exactly; anything else skips nothing. Bounds of temporal and bool columns are stored
(the format has room for them) but not used yet: their literals print as dates, which
the parser does not read. Layout: ``docs/FORMAT.md`` section 8.2.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CorruptionError
from ..kv.keys import SYSTEM_PREFIX, prefix_end
from ..kv.views import KvView
from .catalog import TableDef, table_part
from .keys import key_numbers

STATS = SYSTEM_PREFIX + b"\x0b"
_HEADER = struct.Struct("<H")
_COLUMN = np.dtype([("flags", "<u1"), ("nulls", "<u4"), ("min", "<f8"), ("max", "<f8")])
_BOUNDED = 1
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_COMPARISON = re.compile(rf"\(({_NAME}) (<|<=|>|>=|==) ({_NUMBER})\)")
_OPERATORS = {"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
              "==": "equal"}


def stats_key(definition: TableDef, chunk: int) -> bytes:
    """Key of chunk ``chunk``'s statistics."""
    return STATS + table_part(definition) + chunk.to_bytes(4, "big")


def encode_stats(rows: pa.Table) -> bytes:
    """The statistics of a chunk's rows."""
    columns = np.zeros(rows.num_columns, _COLUMN)
    for i, column in enumerate(rows.columns):
        columns[i]["nulls"] = column.null_count
        bounds = _bounds(column)
        if bounds is not None:
            columns[i]["flags"] = _BOUNDED
            columns[i]["min"], columns[i]["max"] = bounds
    return _HEADER.pack(rows.num_columns) + columns.tobytes()


def _bounds(column: pa.ChunkedArray) -> tuple[float, float] | None:
    """(low, high) floats with low <= every value <= high, or None."""
    kind = column.type
    t = pa.types
    if t.is_timestamp(kind) or t.is_date32(kind) or t.is_time64(kind):
        column = column.cast(pa.int64() if not t.is_date32(kind) else pa.int32())
    elif t.is_boolean(kind):
        column = column.cast(pa.int8())
    elif not (t.is_integer(kind) or t.is_floating(kind)):
        return None
    low, high = pc.min_max(column).values()
    low, high = low.as_py(), high.as_py()
    if low is None or high is None or (isinstance(low, float) and
                                       (math.isnan(low) or math.isnan(high))):
        return None
    return _below(low), _above(high)


def _below(value: float) -> float:
    result = float(value)
    return math.nextafter(result, -math.inf) if result > value else result


def _above(value: float) -> float:
    result = float(value)
    return math.nextafter(result, math.inf) if result < value else result


def comparisons(filter: pc.Expression) -> list[tuple[str, str, float | int]] | None:
    """The ``(column, operator, number)`` comparisons whose conjunction ``filter``
    is, or None if it is not (exactly) of that form. Numbers keep their type: an
    integer is compared exactly (Python compares floats and ints exactly)."""
    texts = _COMPARISON.findall(str(filter))
    if not texts:
        return None
    # A whole float prints like an integer (1.0 as 1): try the numbers as written,
    # then all as floats.
    for as_float in (False, True):
        found = [(name, operator, float(number) if as_float or any(c in number for c in ".e")
                  else int(number)) for name, operator, number in texts]
        try:
            rebuilt = _conjunction(found, pc.field)
        except (OverflowError, pa.ArrowException):
            continue  # a literal pyarrow would not make from the text (uint64 2**63...)
        if rebuilt.equals(filter):
            return found
    return None


def _conjunction(terms: list[tuple[str, str, float | int]],
                 operand: Callable[[str], Any]) -> Any:
    """``terms`` applied to ``operand(column)`` (a field reference for an expression,
    a column for a result) and joined with ``and_kleene``, as ``&`` joins them."""
    result = None
    for name, operator, number in terms:
        term = getattr(pc, _OPERATORS[operator])(operand(name), pa.scalar(number))
        result = term if result is None else pc.and_kleene(result, term)
    assert result is not None
    return result


def matches(rows: pa.Table, terms: list[tuple[str, str, float | int]]) -> pa.ChunkedArray:
    """Whether each row satisfies the conjunction ``terms`` (as :func:`comparisons`
    gives them; null where unknown), with one compute call per comparison."""
    result: pa.ChunkedArray = _conjunction(terms, rows.column)
    return result


def skipped_chunks(view: KvView, definition: TableDef, filter: pc.Expression | None,
                   ) -> set[int]:
    """Chunks whose statistics prove no row satisfies ``filter``."""
    terms = None if filter is None else comparisons(filter)
    if not terms:
        return set()
    low_key = STATS + table_part(definition)
    found = view.range_raw(low_key, prefix_end(low_key))
    if not len(found):
        return set()
    chunks = key_numbers(definition.name, found.keys, len(low_key), 1)[:, 0]
    value_offsets, values = found.values()
    names = definition.schema.names
    skipped = np.zeros(chunks.size, bool)
    for i in range(chunks.size):
        columns = _decode(definition, values[value_offsets[i] : value_offsets[i + 1]])
        for name, operator, number in terms:
            position = names.index(name) if name in names else len(columns)
            if position >= len(columns) or not columns[position]["flags"] & _BOUNDED:
                continue
            low, high = float(columns[position]["min"]), float(columns[position]["max"])
            if _impossible(operator, number, low, high):
                skipped[i] = True
                break
    return set(chunks[skipped].tolist())


def _decode(definition: TableDef, value: np.ndarray) -> np.ndarray:
    if value.size < _HEADER.size:
        raise CorruptionError(f"table {definition.name!r}: chunk statistics are damaged")
    (count,) = _HEADER.unpack_from(value.tobytes(), 0)
    if value.size != _HEADER.size + count * _COLUMN.itemsize:
        raise CorruptionError(f"table {definition.name!r}: chunk statistics are damaged")
    return np.frombuffer(value[_HEADER.size :].tobytes(), _COLUMN)


def _impossible(operator: str, number: float | int, low: float, high: float) -> bool:
    """Whether no value in ``[low, high]`` can satisfy ``value <operator> number``."""
    if operator == ">":
        return high <= number
    if operator == ">=":
        return high < number
    if operator == "<":
        return low >= number
    if operator == "<=":
        return low > number
    return number < low or number > high

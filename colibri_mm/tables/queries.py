"""Queries over a table's live rows: filters (``pyarrow.compute`` expressions, with
chunks skipped by their statistics), counts and scans. The rows come from
:func:`~colibri_mm.tables.rows.live_chunks`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaError
from ..kv.views import KvView
from . import stats
from .catalog import TableDef
from .rows import live_chunks, row_count

_ROW_NUMBER = "\x00row"
"""The name of the row-number column :func:`matching` adds while it filters (a name
no real column is expected to have)."""


def matching(definition: TableDef, rows: pa.Table,
             filter: pc.Expression | None) -> np.ndarray:
    """Mask of the rows for which ``filter`` holds (all if None)."""
    if filter is None:
        return np.ones(rows.num_rows, bool)
    numbered = rows.append_column(_ROW_NUMBER, pa.array(np.arange(rows.num_rows)))
    kept = _filtered(definition, numbered, filter, [_ROW_NUMBER]).column(_ROW_NUMBER)
    result = np.zeros(rows.num_rows, bool)
    result[kept.to_numpy()] = True
    return result


def _filtered(definition: TableDef, rows: pa.Table, filter: pc.Expression,
              keep: Sequence[str] | None) -> pa.Table:
    """The rows for which ``filter`` holds, with columns ``keep`` (all if None). The
    filter first sees only the columns its text names besides those (so only they
    are copied), all of them if that fails."""
    tries = [rows]
    if keep is not None:
        text = str(filter)
        tries.insert(0, rows.select([c for c in rows.column_names if c in text or c in keep]))
    for candidates in tries:
        try:
            hit = candidates.filter(filter)
            return hit if keep is None else hit.select(list(keep))
        except (pa.ArrowException, TypeError) as e:
            if candidates is rows:
                raise SchemaError(f"table {definition.name!r}: filter {filter} cannot be "
                                  f"evaluated ({e})") from None
    raise AssertionError("unreachable")


def _whole(definition: TableDef, chunks: Iterator[tuple[int, np.ndarray, pa.Table]],
           columns: Sequence[str] | None) -> pa.Table:
    """The rows of ``chunks`` as one table, without copying."""
    parts = [rows for _, _, rows in chunks if rows.num_rows]
    if parts:
        return pa.concat_tables(parts)
    empty = definition.schema.empty_table()
    return empty if columns is None else empty.select(list(columns))


def filtered(view: KvView, definition: TableDef, filter: pc.Expression | None,
             columns: Sequence[str] | None = None) -> pa.Table:
    """The live rows (all columns or ``columns``) for which ``filter`` holds (all if
    None); the filter runs once over the whole table (Arrow's engine, threaded)."""
    if filter is None:
        if columns is not None and not columns:
            # Tables without columns lose their row count when concatenated: read
            # one column, then drop it.
            first = definition.schema.names[:1]
            return _whole(definition, live_chunks(view, definition, first, numbered=False),
                          first).select([])
        return _whole(definition, live_chunks(view, definition, columns, numbered=False),
                      columns)
    skip = stats.skipped_chunks(view, definition, filter)
    rows = _whole(definition, live_chunks(view, definition, numbered=False, skip=skip), None)
    return _filtered(definition, rows, filter, columns)


def count(view: KvView, definition: TableDef, filter: pc.Expression | None) -> int:
    """Live rows (for which ``filter`` holds)."""
    if filter is None:
        return row_count(view, definition)
    terms = stats.comparisons(filter)
    names = sorted({name for name, _, _ in terms or []})
    if not terms or not set(names) <= set(definition.schema.names):
        return int(filtered(view, definition, filter, []).num_rows)
    # The filter is exactly these comparisons: count their matches with compute calls
    # on the named columns, without making the matching rows.
    skip = stats.skipped_chunks(view, definition, filter)
    rows = _whole(definition, live_chunks(view, definition, names, numbered=False, skip=skip),
                  names)
    try:
        return int(pc.sum(stats.matches(rows, terms)).as_py() or 0)
    except (pa.ArrowException, TypeError) as e:
        raise SchemaError(f"table {definition.name!r}: filter {filter} cannot be evaluated "
                          f"({e})") from None


def scan(view: KvView, definition: TableDef, columns: Sequence[str] | None,
         filter: pc.Expression | None) -> pa.Table:
    """The live rows (all columns, or ``columns``) for which ``filter`` holds."""
    _check_columns(definition, columns)
    return filtered(view, definition, filter, columns)


def scan_chunks(view: KvView, definition: TableDef, columns: Sequence[str] | None,
                filter: pc.Expression | None) -> Iterator[pa.Table]:
    """Like :func:`scan`, one chunk at a time (for streaming readers: memory holds
    one chunk's filtered rows, not the whole result); empty chunks are left out."""
    _check_columns(definition, columns)
    if filter is None:
        for _, _, rows in live_chunks(view, definition, columns, numbered=False):
            if rows.num_rows:
                yield rows
        return
    skip = stats.skipped_chunks(view, definition, filter)
    for _, _, rows in live_chunks(view, definition, numbered=False, skip=skip):
        hit = _filtered(definition, rows, filter, columns)
        if hit.num_rows:
            yield hit


def _check_columns(definition: TableDef, columns: Sequence[str] | None) -> None:
    if columns is not None:
        missing = [c for c in columns if c not in definition.schema.names]
        if missing:
            raise SchemaError(f"table {definition.name!r} has no column {missing[0]!r}")

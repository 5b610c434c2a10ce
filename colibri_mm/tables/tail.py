"""A table's tail: rows written a few at a time, kept one stored value per row until
there are enough of them to make a chunk.

A chunk per small write would make every one-row insert or update write (and log) an
Arrow IPC stream and leave chunk bookkeeping behind; so writes of at most a quarter of
the ``tail_rows`` option (default 256) add their rows to the tail instead. Tail row ``seq`` of
a table is the value of key ``01 09 table_id seq`` in the form of
:mod:`.row_format`, and its row id is ``TAIL_CHUNK << 32 | seq``; key ``01 0A
table_id`` holds the next ``seq``. Deleting a tail row deletes its key, so the tail
holds no delete marks. When the next ``seq`` would pass ``tail_rows``, the writer
folds the tail into a chunk (:func:`colibri_mm.tables.writes.fold_tail`) and starts
again at 0; snapshots older than the fold keep reading the rows they saw through the
store's versions. Layout: ``docs/FORMAT.md`` section 8.1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..errors import CorruptionError
from ..kernels.search import pack_varlen
from ..kv.keys import SYSTEM_PREFIX, prefix_end
from ..kv.views import KvTransactionView, KvView
from .catalog import TableDef, table_part
from .keys import key_numbers
from .row_format import Cells, decode_rows

TAIL = SYSTEM_PREFIX + b"\x09"
TAIL_STATE = SYSTEM_PREFIX + b"\x0a"
TAIL_CHUNK = 0xFFFFFFFF
"""The chunk number of tail rows in row ids (no chunk is ever given it)."""


def _prefix(definition: TableDef) -> bytes:
    return TAIL + table_part(definition)


def _key(definition: TableDef, seq: int) -> bytes:
    return _prefix(definition) + seq.to_bytes(4, "big")


def next_seq(view: KvView, definition: TableDef) -> int:
    """The ``seq`` the next tail row gets."""
    stored = view.get_raw(TAIL_STATE + table_part(definition))
    return 0 if stored is None else int.from_bytes(stored, "big")


def append(view: KvTransactionView, definition: TableDef, rows: Sequence[bytes],
           first: int) -> np.ndarray:
    """Store ``rows`` (in the row form of :mod:`.row_format`) as tail rows ``first,
    first + 1, ...`` (the caller folds the tail before they would pass
    ``tail_rows``); returns their row ids."""
    for seq, value in enumerate(rows, first):
        view.put_raw(_key(definition, seq), value)
    end = first + len(rows)
    view.put_raw(TAIL_STATE + table_part(definition), end.to_bytes(4, "big"))
    return np.arange(TAIL_CHUNK << 32 | first, TAIL_CHUNK << 32 | end, dtype=np.uint64)


def delete(view: KvTransactionView, definition: TableDef, seqs: Sequence[int]) -> None:
    """Delete tail rows ``seqs``."""
    for seq in seqs:
        view.put_raw(_key(definition, seq), None)


def restart(view: KvTransactionView, definition: TableDef) -> None:
    """Number the next tail row 0 again (after a fold emptied the tail)."""
    view.put_raw(TAIL_STATE + table_part(definition), None)


def rows_at(view: KvView, definition: TableDef, seqs: Sequence[int]) -> pa.Table:
    """Tail rows ``seqs`` in that order (each must exist: an index points at it)."""
    values = [_stored(view, definition, seq) for seq in seqs]
    return decode_rows(definition.schema, pack_varlen(values), _where(definition))


def cells(view: KvView, definition: TableDef, seq: int) -> Cells:
    """Tail row ``seq`` as its columns' stored bytes (it must exist), read without
    making Arrow arrays (what an update copies)."""
    return definition.row_layout.cells(_stored(view, definition, seq), _where(definition))


def _stored(view: KvView, definition: TableDef, seq: int) -> bytes:
    value = view.get_raw(_key(definition, seq))
    if value is None:
        raise CorruptionError(f"table {definition.name!r}: an index points at tail "
                              f"row {seq}, which is missing")
    return value


def read(view: KvView, definition: TableDef) -> tuple[np.ndarray, pa.Table]:
    """(seqs, rows) of every tail row, in ``seq`` order."""
    low = _prefix(definition)
    found = view.range_raw(low, prefix_end(low))
    if not len(found):
        return np.empty(0, np.int64), definition.schema.empty_table()
    seqs = key_numbers(definition.name, found.keys, len(low), 1)[:, 0]
    return seqs, decode_rows(definition.schema, found.values(), _where(definition))


def count(view: KvView, definition: TableDef) -> int:
    """Number of tail rows."""
    low = _prefix(definition)
    return len(view.range_raw(low, prefix_end(low)))


def _where(definition: TableDef) -> str:
    return f"table {definition.name!r}, tail rows"

"""Secondary indexes: one :class:`Index` protocol, an ordered and a hash kind, both
kept as engine keys of the transactional store (so they commit, recover and obey
snapshots exactly like the rows they index).

An entry is the key ``01 07 table_id index_id`` + *body* + *row*, with the row id
(u64 BE) as value. The body is the indexed values in index form
(:func:`~colibri_mm.tables.keys.encode_index_keys`: nulls allowed, every part
terminated); the hash kind puts the body's CRC-32C (u32 BE) in front of it. *Row*
is the row's encoded primary key, or its row id for a keyless table, so entries are
unique and a moved row (compaction) keeps its entry key. Ordered entries sort by
value, so they answer ranges; hash entries only answer equality, by one prefix.
Both are found with the store's search kernel over its sorted runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from ..errors import SchemaError
from ..kernels.checksum import crc32c, crc32c_rows
from ..kernels.keycodec import Varlen, concat_rows
from ..kv.batch import entries_from_slices
from ..kv.keys import SYSTEM_PREFIX, prefix_end
from ..kv.records import PUT
from ..kv.views import KvTransactionView, KvView
from .catalog import IndexDef, TableDef, table_part
from .keys import encode_index_keys, encode_index_values, encode_keys

SECONDARY = SYSTEM_PREFIX + b"\x07"


class Index(Protocol):
    """What every index kind offers (row ids are ``chunk << 32 | row``)."""

    definition: IndexDef

    def insert(self, view: KvTransactionView, rows: pa.Table, row_ids: np.ndarray,
               bulk_changes: int) -> None:
        """Add entries for ``rows`` stored at ``row_ids``."""

    def delete(self, view: KvTransactionView, rows: pa.Table, row_ids: np.ndarray) -> None:
        """Remove the entries of ``rows`` stored at ``row_ids``."""

    def lookup(self, view: KvView, values: Sequence[Any]) -> np.ndarray:
        """Row ids of the rows whose indexed columns equal ``values``."""

    def lookup_many(self, view: KvView, values: Sequence[Sequence[Any]]) -> list[np.ndarray]:
        """:meth:`lookup` of each tuple of ``values``."""

    def range(self, view: KvView, low: Sequence[Any] | None,
              high: Sequence[Any] | None) -> np.ndarray:
        """Row ids with ``low <= values < high`` (None: unbounded), in value order."""

    def len(self, view: KvView) -> int:
        """Number of entries."""

    def verify(self, view: KvView, rows: pa.Table, row_ids: np.ndarray) -> list[str]:
        """Problems found comparing the entries with the live ``rows`` at ``row_ids``."""


class _EngineKeyIndex:
    """The layout shared by both kinds; :meth:`_bodies` and :meth:`_body` differ."""

    def __init__(self, table: TableDef, definition: IndexDef) -> None:
        self.table = table
        self.definition = definition
        self.base = SECONDARY + table_part(table) + definition.index_id.to_bytes(2, "big")

    def _bodies(self, rows: pa.Table) -> Varlen:
        return encode_index_keys(rows, self.definition.columns)

    def _body(self, values: Sequence[Any]) -> bytes:
        return encode_index_values(self.table.schema, self.definition.columns, values)

    def _entry_keys(self, rows: pa.Table, row_ids: np.ndarray) -> Varlen:
        if self.table.primary_key is not None:
            suffix = encode_keys(rows, self.table.primary_key)
        else:
            n = len(row_ids)
            suffix = (np.arange(n + 1, dtype=np.int64) * 8,
                      row_ids.astype(">u8").view(np.uint8))
        return concat_rows(self._bodies(rows), suffix)

    def insert(self, view: KvTransactionView, rows: pa.Table, row_ids: np.ndarray,
               bulk_changes: int) -> None:
        offsets, data = self._entry_keys(rows, row_ids)
        values = np.ascontiguousarray(row_ids.astype(">u8")).view(np.uint8)
        n = offsets.size - 1
        if n < bulk_changes:
            for i in range(n):
                view.put_raw(self.base + data[offsets[i] : offsets[i + 1]].tobytes(),
                             values[8 * i : 8 * i + 8].tobytes())
            return
        view.put_sorted_raw(entries_from_slices(
            np.full(n, PUT, np.uint8), (offsets[:-1], np.diff(offsets), data),
            (np.arange(n, dtype=np.int64) * 8, np.full(n, 8, np.int64), values), self.base))

    def delete(self, view: KvTransactionView, rows: pa.Table, row_ids: np.ndarray) -> None:
        offsets, data = self._entry_keys(rows, row_ids)
        for i in range(offsets.size - 1):
            view.put_raw(self.base + data[offsets[i] : offsets[i + 1]].tobytes(), None)

    def lookup(self, view: KvView, values: Sequence[Any]) -> np.ndarray:
        if len(values) != len(self.definition.columns):
            raise ValueError(f"the index on {', '.join(self.definition.columns)} takes "
                             f"{len(self.definition.columns)} values, got {len(values)}")
        low = self.base + self._body(values)
        return _row_ids(view.scan_raw(low, prefix_end(low)))

    def lookup_many(self, view: KvView, values: Sequence[Sequence[Any]]) -> list[np.ndarray]:
        return [self.lookup(view, v) for v in values]

    def len(self, view: KvView) -> int:
        return sum(1 for _ in view.scan_raw(self.base, prefix_end(self.base)))

    def verify(self, view: KvView, rows: pa.Table, row_ids: np.ndarray) -> list[str]:
        offsets, data = self._entry_keys(rows, row_ids)
        expected = {self.base + data[offsets[i] : offsets[i + 1]].tobytes(): int(row_ids[i])
                    for i in range(offsets.size - 1)}
        stored = {key: int.from_bytes(value, "big")
                  for key, value in view.scan_raw(self.base, prefix_end(self.base))}
        problems = []
        missing = expected.keys() - stored.keys()
        extra = stored.keys() - expected.keys()
        wrong = [k for k in expected.keys() & stored.keys() if expected[k] != stored[k]]
        name = f"index {self.definition.index_id} of table {self.table.name!r}"
        if missing:
            problems.append(f"{name}: {len(missing)} rows have no entry")
        if extra:
            problems.append(f"{name}: {len(extra)} entries point at no live row")
        if wrong:
            problems.append(f"{name}: {len(wrong)} entries point at the wrong row")
        return problems


class OrderedIndex(_EngineKeyIndex):
    """Entries in value order: equality, prefix and range lookups."""

    def range(self, view: KvView, low: Sequence[Any] | None,
              high: Sequence[Any] | None) -> np.ndarray:
        start = self.base + (self._body(low) if low is not None else b"")
        end = self.base + self._body(high) if high is not None else prefix_end(self.base)
        return _row_ids(view.scan_raw(start, end))


class HashIndex(_EngineKeyIndex):
    """Entries grouped by the CRC-32C of their values: equality lookups only."""

    def _bodies(self, rows: pa.Table) -> Varlen:
        bodies = super()._bodies(rows)
        hashes = crc32c_rows(*bodies).astype(">u4").view(np.uint8)
        n = bodies[0].size - 1
        return concat_rows((np.arange(n + 1, dtype=np.int64) * 4, hashes), bodies)

    def _body(self, values: Sequence[Any]) -> bytes:
        body = super()._body(values)
        return crc32c(body).to_bytes(4, "big") + body

    def range(self, view: KvView, low: Sequence[Any] | None,
              high: Sequence[Any] | None) -> np.ndarray:
        raise SchemaError(f"the hash index on {', '.join(self.definition.columns)} of "
                          f"table {self.table.name!r} answers equality only, not ranges")


def _row_ids(pairs: Any) -> np.ndarray:
    return np.array([int.from_bytes(value, "big") for _, value in pairs], np.uint64)


def open_index(table: TableDef, definition: IndexDef) -> Index:
    """The index object of ``definition``."""
    kind = OrderedIndex if definition.kind == "ordered" else HashIndex
    return kind(table, definition)


def indexes_of(table: TableDef) -> list[Index]:
    """Every secondary index of ``table``."""
    return [open_index(table, d) for d in table.indexes]

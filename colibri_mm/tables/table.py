"""``db.table(name)`` and ``snap.table(name)``: a handle on a table, by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import parquet
from ..errors import ReadOnlyError, SchemaError
from ..kv.views import KvSnapshotView
from . import queries, registry, rows, writes
from .catalog import TableDef
from .describe import describe
from .indexes import open_index
from .scan import Scan
from .verify import verify_table

T = TypeVar("T")

if TYPE_CHECKING:
    from ..database import Database
    from ..transaction import Snapshot


class Table:
    """A table of the database.

    From ``db.table(name)`` every read takes a snapshot of the newest commit, so a
    handle stays valid across schema changes (and raises
    :class:`~colibri_mm.errors.TableNotFoundError` once the table is dropped or
    renamed); from ``snap.table(name)`` every read sees that snapshot.
    """

    def __init__(self, db: Database, name: str, snapshot: Snapshot | None = None) -> None:
        self._db = db
        self._name = name
        self._snapshot = snapshot
        self._known: tuple[int, TableDef] | None = None
        """(CSN, the definition a snapshot of that CSN sees): the catalog only changes
        by a commit, which makes a new CSN, so reads of snapshots taken at the same
        CSN skip the lookup."""

    def _read(self, work: Callable[[KvSnapshotView, TableDef], T]) -> T:
        """``work(view, definition)`` in this table's snapshot, or in one taken now
        (a plain call, not a generator context: point reads are that hot)."""
        if self._snapshot is not None:
            view = self._snapshot.kv
            return work(view, registry.lookup(view, self._name))
        snap = self._db.snapshot()
        try:
            return work(snap.kv, self._lookup(snap))
        finally:
            snap.close()

    def _lookup(self, snapshot: Snapshot) -> TableDef:
        """The table's definition as ``snapshot`` (just taken, so open) sees it."""
        known = self._known
        if known is not None and known[0] == snapshot.csn:
            return known[1]
        definition = registry.lookup(snapshot.kv, self._name)
        self._known = snapshot.csn, definition
        return definition

    def _definition(self) -> TableDef:
        return self._read(lambda _, definition: definition)

    @property
    def name(self) -> str:
        """The table's name."""
        return self._name

    @property
    def schema(self) -> pa.Schema:
        """The table's Arrow schema."""
        return self._definition().schema

    @property
    def primary_key(self) -> tuple[str, ...] | None:
        """The primary key columns (None: a keyless table)."""
        return self._definition().primary_key

    def get(self, key: Any) -> dict[str, Any] | None:
        """The row with primary key ``key`` (a value; a tuple for a key of several
        columns) as a dict, or None."""
        cache = self._db.chunk_cache
        return self._read(lambda view, definition: rows.get(view, definition, key, cache))

    def get_many(self, keys: Sequence[Any]) -> pa.Table:
        """The rows with the given primary keys that exist, in the order of ``keys``."""
        cache = self._db.chunk_cache
        return self._read(lambda view, definition: rows.get_many(view, definition, keys,
                                                                 cache))

    def scan(self, columns: Sequence[str] | None = None,
             filter: pc.Expression | None = None) -> Scan:
        """The rows of a snapshot taken now (``columns``: a projection; ``filter``: a
        ``pyarrow.compute`` expression such as ``pc.field("x") > 0.5``)."""
        return self._read(lambda view, definition: Scan(queries.scan(view, definition, columns,
                                                                  filter)))

    def to_arrow_table(self, columns: Sequence[str] | None = None,
                       filter: pc.Expression | None = None) -> pa.Table:
        """The rows of a snapshot taken now as a ``pyarrow.Table`` (columns of
        checkpointed rows point into the mapped file, see :meth:`scan`)."""
        return self.scan(columns, filter).to_arrow_table()

    def to_arrow_reader(self, batch_size: int = 65536, columns: Sequence[str] | None = None,
                        filter: pc.Expression | None = None) -> pa.RecordBatchReader:
        """The rows of a snapshot taken now as a stream of record batches of at most
        ``batch_size`` rows, parsed chunk by chunk as the stream is consumed (memory
        holds about one chunk; the pages read stay valid until the stream is freed,
        and nothing blocks writers)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        snapshot = self._snapshot if self._snapshot is not None else self._db.snapshot()
        try:
            definition = registry.lookup(snapshot.kv, self._name)
            chunks = queries.scan_chunks(snapshot.kv, definition, columns, filter)
            # The first chunk makes every read of the snapshot (errors in columns or
            # filter surface now); the rest parse chunks held by the scan's lease,
            # which Arrow frees with the stream, so the snapshot is not kept open.
            first = next(chunks, None)
        finally:
            if snapshot is not self._snapshot:
                snapshot.close()
        schema = definition.schema if columns is None else \
            pa.schema([definition.schema.field(c) for c in columns],
                      metadata=definition.schema.metadata)

        def batches() -> Iterator[pa.RecordBatch]:
            if first is not None:
                yield from first.to_batches(max_chunksize=batch_size)
            for part in chunks:
                yield from part.to_batches(max_chunksize=batch_size)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def to_pandas(self, columns: Sequence[str] | None = None,
                  filter: pc.Expression | None = None) -> Any:
        """The rows of a snapshot taken now as a ``pandas.DataFrame`` (needs pandas:
        ``pip install colibri-mm[dataframes]``)."""
        _require("pandas", "to_pandas")
        return self.to_arrow_table(columns, filter).to_pandas()

    def to_polars(self, columns: Sequence[str] | None = None,
                  filter: pc.Expression | None = None) -> Any:
        """The rows of a snapshot taken now as a ``polars.DataFrame`` (needs polars:
        ``pip install colibri-mm[dataframes]``)."""
        polars = _require("polars", "to_polars")
        return polars.from_arrow(self.to_arrow_table(columns, filter))

    def to_parquet(self, path: parquet.PathLike, columns: Sequence[str] | None = None,
                   filter: pc.Expression | None = None, *, compression: str = "snappy",
                   row_group_size: int = 1 << 20, progress: bool = False) -> int:
        """Write the rows of a snapshot taken now to the Parquet file ``path``,
        streaming (no partial file is left if it fails); returns how many rows."""
        return parquet.to_parquet(self, path, columns=columns, filter=filter,
                                  compression=compression, row_group_size=row_group_size,
                                  progress=progress)

    def to_dataset(self, base_dir: parquet.PathLike, partitioning: Sequence[str] = (),
                   columns: Sequence[str] | None = None,
                   filter: pc.Expression | None = None, *,
                   existing_data_behavior: str = "error") -> None:
        """Write the rows of a snapshot taken now as a Parquet dataset under
        ``base_dir``, partitioned hive-style by the ``partitioning`` columns
        (through ``pyarrow.dataset.write_dataset``, streaming)."""
        parquet.to_dataset(self, base_dir, partitioning=partitioning, columns=columns,
                           filter=filter, existing_data_behavior=existing_data_behavior)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream of the rows of a snapshot taken now, so
        ``pa.table(t)``, polars and DuckDB read the table directly."""
        return self.to_arrow_reader().__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        """The Arrow PyCapsule schema of the table (``pa.schema(t)``)."""
        return self.schema.__arrow_c_schema__()

    def count(self, filter: pc.Expression | None = None) -> int:
        """Number of rows (for which ``filter`` holds)."""
        return self._read(lambda view, definition: queries.count(view, definition, filter))

    def describe(self) -> dict[str, Any]:
        """What the table holds and how it is stored: ``name``, ``schema``,
        ``primary_key``, ``rows``, ``row_groups`` (stored chunks), ``tail_rows``
        (rows not yet in a chunk), ``stored_bytes`` (of chunks and tail rows, before
        the store's own overhead) and ``indexes``."""
        return self._read(describe)

    @property
    def indexes(self) -> list[dict[str, Any]]:
        """The secondary indexes: ``{"columns": (...), "kind": "ordered" | "hash"}``."""
        return [{"columns": i.columns, "kind": i.kind} for i in self._definition().indexes]

    def create_index(self, columns: str | Sequence[str], kind: str = "ordered") -> None:
        """Index ``columns`` ("ordered": equality and ranges; "hash": equality), built
        from the rows in the same transaction; kept up to date by every later write."""
        self._refuse_in_snapshot("create an index")
        options = self._db.options
        with self._db.transaction() as tx:
            definition = registry.create_index(tx.kv, self._name, columns, kind)
            index = open_index(definition, definition.indexes[-1])
            for chunk, positions, live in rows.live_chunks(tx.kv, definition):
                row_ids = (np.uint64(chunk) << np.uint64(32)) | positions.astype(np.uint64)
                index.insert(tx.kv, live, row_ids, options.bulk_changes)

    def find(self, where: dict[str, Any]) -> pa.Table:
        """The rows whose columns equal ``where`` (None matches null), through a
        secondary index on exactly those columns when there is one, else a scan."""
        if not where:
            raise ValueError("find needs at least one column = value")
        return self._read(lambda view, definition: self._find(view, definition, where))

    def _find(self, view: KvSnapshotView, definition: TableDef,
              where: dict[str, Any]) -> pa.Table:
        unknown = [c for c in where if c not in definition.schema.names]
        if unknown:
            raise SchemaError(f"table {self._name!r} has no column {unknown[0]!r}")
        for index_def in sorted(definition.indexes, key=lambda i: i.kind != "hash"):
            if set(index_def.columns) == set(where):
                index = open_index(definition, index_def)
                found = index.lookup(view, [where[c] for c in index_def.columns])
                return rows.fetch(view, definition, found, self._db.chunk_cache)
        condition = None
        for column, value in where.items():
            term = pc.field(column).is_null() if value is None else \
                pc.field(column) == pa.scalar(value, definition.schema.field(column).type)
            condition = term if condition is None else condition & term
        return queries.scan(view, definition, None, condition)

    def verify(self) -> list[str]:
        """Problems found checking every index against the rows (empty: all good)."""
        return self._read(verify_table)

    def _refuse_in_snapshot(self, what: str) -> None:
        if self._snapshot is not None:
            raise ReadOnlyError(f"table {self._name!r} was opened from a snapshot, which "
                                f"cannot {what}")

    def compact(self) -> dict[str, int]:
        """Rewrite the chunks holding deleted rows, or too few rows, into full chunks
        (one transaction; snapshots already open keep reading the old chunks)."""
        self._refuse_in_snapshot("compact it")
        with self._db.transaction() as tx:
            return writes.compact(tx.kv, registry.lookup(tx.kv, self._name),
                                  self._db.write_settings)

    def add_column(self, field: pa.Field, default: Any = None) -> None:
        """Append a column; rows written before read ``default`` in it (one transaction)."""
        self._refuse_in_snapshot("change the schema")
        with self._db.transaction() as tx:
            # Tail rows are stored in the form of the schema they were written with.
            writes.fold_tail(tx.kv, registry.lookup(tx.kv, self._name),
                             self._db.write_settings)
            registry.add_column(tx.kv, self._name, field, default)

    def __repr__(self) -> str:
        return f"<colibri_mm.Table {self._name!r}>"


def _require(module: str, method: str) -> Any:
    """Module ``module``, or an ImportError saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"table.{method}() needs {module}: pip install "
                          f"'colibri-mm[dataframes]' (or {module} itself)") from None

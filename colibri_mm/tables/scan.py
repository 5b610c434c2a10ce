"""The result of ``table.scan()``: rows of one snapshot, offered in the forms
analytics code asks for (Arrow table or reader, numpy arrays, the Arrow PyCapsule
stream that pandas, polars and DuckDB read)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


class Scan:
    """Rows read from one snapshot (already materialised as an Arrow table)."""

    def __init__(self, rows: pa.Table) -> None:
        self._rows = rows

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return int(self._rows.num_rows)

    @property
    def schema(self) -> pa.Schema:
        """The rows' Arrow schema."""
        return self._rows.schema

    def to_arrow_table(self) -> pa.Table:
        """The rows as a ``pyarrow.Table``."""
        return self._rows

    def to_arrow_reader(self, batch_size: int = 65536) -> pa.RecordBatchReader:
        """The rows as a stream of record batches of at most ``batch_size`` rows."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return pa.RecordBatchReader.from_batches(
            self._rows.schema, self._rows.to_batches(max_chunksize=batch_size))

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Each column as a numpy array (nulls as NaN or None where numpy needs it)."""
        return {name: self._rows.column(name).to_numpy()
                for name in self._rows.column_names}

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream interface."""
        return self._rows.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        """The Arrow PyCapsule schema interface."""
        return self._rows.schema.__arrow_c_schema__()

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return f"<colibri_mm.Scan {self.num_rows} rows, columns {self._rows.column_names}>"

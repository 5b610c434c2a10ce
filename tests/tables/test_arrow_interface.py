"""Tables and scans as Arrow objects: PyCapsule streams and schemas read by pyarrow
and DuckDB directly, and the to_arrow_* shortcuts."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import colibri_mm as cm

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())],
                   metadata={b"source": b"test"})


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=100)
    database.create_table("t", SCHEMA, primary_key="id")
    with database.transaction() as tx:
        tx.insert("t", {"id": list(range(1000)), "x": [i / 1000 for i in range(1000)],
                        "s": [f"s{i % 7}" for i in range(1000)]})
    yield database
    database.close()


def test_pyarrow_reads_tables_and_scans_through_pycapsules(db: cm.Database) -> None:
    table = db.table("t")
    expected = table.scan().to_arrow_table()
    assert pa.table(table).equals(expected)
    assert pa.schema(table).equals(SCHEMA, check_metadata=True)
    assert pa.RecordBatchReader.from_stream(table).read_all().equals(expected)
    scan = table.scan(columns=["s", "id"], filter=pc.field("x") >= 0.5)
    assert pa.schema(scan).names == ["s", "id"]
    assert pa.table(scan).num_rows == 500


def test_to_arrow_shortcuts(db: cm.Database) -> None:
    table = db.table("t")
    assert table.to_arrow_table(columns=["id"], filter=pc.field("id") < 10) \
        .column("id").to_pylist() == list(range(10))
    batches = list(table.to_arrow_reader(batch_size=64, columns=["x"]))
    assert sum(b.num_rows for b in batches) == 1000 and max(b.num_rows for b in batches) == 64


def test_duckdb_queries_a_table_object_directly(db: cm.Database) -> None:
    t = db.table("t")  # noqa: F841 (DuckDB finds it by its name)
    assert duckdb.sql("SELECT count(*), min(id), max(id) FROM t WHERE x >= 0.5") \
        .fetchall() == [(500, 500, 999)]


def test_a_snapshot_table_streams_its_snapshot(db: cm.Database) -> None:
    with db.snapshot() as snap:
        with db.transaction() as tx:
            tx.delete_where("t", pc.field("id") >= 10)
        assert pa.table(snap.table("t")).num_rows == 1000
    assert pa.table(db.table("t")).num_rows == 10


def test_to_pandas_and_to_polars_keep_values_and_types(tmp_path: Path) -> None:
    import datetime

    import pandas as pd
    import polars as pl

    schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("ns", tz="UTC")),
                        ("cat", pa.dictionary(pa.int32(), pa.string())),
                        ("v", pa.float64())])
    with cm.connect(tmp_path / "db", create=True) as db:
        db.create_table("t", schema, primary_key="id")
        when = datetime.datetime(2026, 12, 5, 3, 4, 5, tzinfo=datetime.UTC)
        with db.transaction() as tx:
            tx.insert("t", {"id": [1, 2], "ts": [when, None], "cat": ["a", "b"],
                            "v": [0.5, None]})
        frame = db.table("t").to_pandas()
        assert isinstance(frame, pd.DataFrame) and list(frame["id"]) == [1, 2]
        assert frame["ts"][0] == pd.Timestamp(when) and pd.isna(frame["ts"][1])
        assert isinstance(frame["cat"].dtype, pd.CategoricalDtype)
        polars_frame = db.table("t").to_polars(filter=pc.field("id") == 1)
        assert isinstance(polars_frame, pl.DataFrame)
        assert polars_frame["v"].to_list() == [0.5] and polars_frame.height == 1
        assert pl.DataFrame(db.table("t")).height == 2  # through the PyCapsule stream


def test_a_missing_dataframe_library_is_named(db: cm.Database,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def without_polars(name: str, package: str | None = None) -> object:
        if name == "polars":
            raise ImportError("no polars here")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_polars)
    with pytest.raises(ImportError, match=r"to_polars\(\) needs polars"):
        db.table("t").to_polars()

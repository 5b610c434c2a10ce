"""db.import_arrow and db.import_parquet: every accepted source, every mode, and the
all-or-nothing rule (a bad import leaves the database exactly as it was)."""

import gc
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import colibri_mm as cm

SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())])


def rows(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table({"id": ids, "x": [i / 7 for i in ids], "s": [f"s{i % 5}" for i in ids]},
                    schema=SCHEMA)


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = cm.connect(tmp_path / "db", create=True, row_group_rows=1000)
    yield database
    database.close()


def sorted_rows(db: cm.Database, name: str) -> pa.Table:
    return db.table(name).to_arrow_table().sort_by("id")


@pytest.mark.parametrize("form", ["table", "batch", "reader", "batches", "pandas", "polars",
                                  "capsule"])
def test_every_source_form_imports_the_same_rows(db: cm.Database, form: str) -> None:
    data = rows(0, 2500)
    source = {
        "table": lambda: data,
        "batch": lambda: data.combine_chunks().to_batches()[0],
        "reader": lambda: pa.RecordBatchReader.from_batches(
            SCHEMA, data.to_batches(max_chunksize=333)),
        "batches": lambda: iter(data.to_batches(max_chunksize=400)),
        "pandas": lambda: data.to_pandas(),
        "polars": lambda: pl.from_arrow(data),
        "capsule": lambda: _Capsule(data),
    }[form]()
    result = db.import_arrow("t", source, primary_key="id")
    assert result.rows == 2500 and result.table == "t"
    got = sorted_rows(db, "t")
    if form == "pandas":  # pandas 3 hands its strings over as large_string
        assert got.schema.field("s").type in (pa.string(), pa.large_string())
        got = got.cast(SCHEMA)
    assert got.equals(data)
    assert db.table("t").primary_key == ("id",)


class _Capsule:
    """Only the PyCapsule protocol, nothing else pyarrow knows."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def test_rows_are_stored_in_full_chunks(db: cm.Database) -> None:
    batches = rows(0, 3500).to_batches(max_chunksize=300)
    db.import_arrow("t", iter(batches))
    assert db.table("t").count() == 3500
    assert [len(batch) for batch in db.table("t").to_arrow_table().to_batches()] == \
        [1000, 1000, 1000, 500]


def test_append_upsert_and_replace(db: cm.Database) -> None:
    db.import_arrow("t", rows(0, 1500), primary_key="id")
    db.table("t").create_index("s")
    db.import_arrow("t", rows(1500, 1500), mode="append")
    assert db.table("t").count() == 3000
    changed = rows(2000, 2000).set_column(1, "x", pa.array([-1.0] * 2000))
    assert db.import_arrow("t", changed, mode="upsert").rows == 2000
    table = db.table("t")
    assert table.count() == 4000
    assert table.get(2500)["x"] == -1.0 and table.get(10)["x"] == 10 / 7
    assert table.verify() == []
    narrower = pa.table({"id": [1, 2], "s": ["a", "b"]})
    db.import_arrow("t", narrower, mode="replace")
    assert db.table("t").schema.names == ["id", "s"]
    assert db.table("t").primary_key == ("id",)
    assert db.table("t").indexes == [{"columns": ("s",), "kind": "ordered"}]
    assert db.table("t").find({"s": "b"}).column("id").to_pylist() == [2]
    db.import_arrow("new", narrower, mode="replace")
    assert db.table("new").count() == 2


def test_a_duplicate_key_imports_nothing_and_names_the_key(db: cm.Database) -> None:
    db.import_arrow("t", rows(0, 1000), primary_key="id")
    with pytest.raises(cm.ConstraintError, match="id=999"):
        db.import_arrow("t", rows(999, 3000), mode="append")
    with pytest.raises(cm.ConstraintError, match="id=2500"):
        db.import_arrow("u", iter([rows(2000, 1000).to_batches()[0],
                                   rows(2500, 10).to_batches()[0]]), primary_key="id")
    assert db.tables() == ["t"]
    assert sorted_rows(db, "t").equals(rows(0, 1000))


def test_schema_errors_name_the_column_and_import_nothing(db: cm.Database) -> None:
    db.import_arrow("t", rows(0, 10), primary_key="id")
    with pytest.raises(cm.SchemaError, match="'extra'"):
        db.import_arrow("t", rows(10, 10).append_column("extra", pa.array([1] * 10)),
                        mode="append")
    with pytest.raises(cm.SchemaError, match="'x'"):
        db.import_arrow("t", pa.table({"id": [50], "x": ["not a number"], "s": ["a"]}),
                        mode="append")
    with pytest.raises(cm.SchemaError, match="'nested'"):
        db.import_arrow("u", pa.table({"nested": pa.array([[1, 2]])}))
    with pytest.raises(cm.TableExistsError):
        db.import_arrow("t", rows(10, 10))
    with pytest.raises(cm.TableNotFoundError, match="mode='create'"):
        db.import_arrow("missing", rows(0, 1), mode="append")
    with pytest.raises(ValueError, match="mode must be"):
        db.import_arrow("t", rows(0, 1), mode="merge")
    with pytest.raises(TypeError, match="data must be"):
        db.import_arrow("t", 42, mode="append")
    batches = [rows(0, 5).to_batches()[0], pa.record_batch({"other": [1]})]
    with pytest.raises(cm.SchemaError, match="record batch 1"):
        db.import_arrow("u", iter(batches))
    assert db.tables() == ["t"]
    assert sorted_rows(db, "t").equals(rows(0, 10))


def test_an_error_in_the_middle_of_a_stream_imports_nothing(db: cm.Database) -> None:
    def failing():  # type: ignore[no-untyped-def]
        yield from rows(0, 5000).to_batches(max_chunksize=1000)
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):
        db.import_arrow("t", failing(), primary_key="id")
    assert db.tables() == []


def test_import_survives_reopen(tmp_path: Path) -> None:
    with cm.connect(tmp_path / "db", create=True, row_group_rows=1000) as db:
        db.import_arrow("t", rows(0, 4321), primary_key="id")
    with cm.connect(tmp_path / "db") as db:
        assert sorted_rows(db, "t").equals(rows(0, 4321))


def test_progress_bar_writes_rows_and_rate(db: cm.Database,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db.import_arrow("t", rows(0, 3000), progress=True)
    err = capsys.readouterr().err
    assert "import t" in err and "3.00k/3.00k" in err and "MB/s" in err


def test_import_parquet_file_files_directory_and_hive(db: cm.Database, tmp_path: Path) -> None:
    data = rows(0, 3000)
    pq.write_table(data, tmp_path / "one.parquet", row_group_size=700)
    db.import_parquet("one", tmp_path / "one.parquet", primary_key="id")
    assert sorted_rows(db, "one").equals(data)
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(rows(0, 1000), parts / "a.parquet")
    pq.write_table(rows(1000, 1000), parts / "b.parquet")
    db.import_parquet("files", [parts / "a.parquet", parts / "b.parquet"], columns=["id", "s"])
    assert db.table("files").schema.names == ["id", "s"]
    assert db.table("files").count() == 2000
    db.import_parquet("directory", parts)
    assert sorted_rows(db, "directory").equals(rows(0, 2000))
    hive = tmp_path / "hive"
    pq.write_to_dataset(data, hive, partition_cols=["s"])
    db.import_parquet("hive", hive, primary_key="id")
    got = sorted_rows(db, "hive")
    assert got.column("s").to_pylist() == data.column("s").to_pylist()
    assert got.column("x").equals(data.column("x"))


def test_import_parquet_errors(db: cm.Database, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.parquet"):
        db.import_parquet("t", tmp_path / "nowhere.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(cm.SchemaError, match=r"junk\.parquet"):
        db.import_parquet("t", tmp_path / "junk.parquet")
    pq.write_table(rows(0, 10), tmp_path / "ok.parquet")
    with pytest.raises(cm.SchemaError, match="'nope'"):
        db.import_parquet("t", tmp_path / "ok.parquet", columns=["id", "nope"])
    assert db.tables() == []


def test_to_parquet_and_to_dataset_round_trip(db: cm.Database, tmp_path: Path) -> None:
    data = rows(0, 3000)
    db.import_arrow("t", data, primary_key="id")
    table = db.table("t")
    assert table.to_parquet(tmp_path / "out.parquet") == 3000
    assert pq.read_table(tmp_path / "out.parquet").sort_by("id").equals(data)
    import pyarrow.compute as pc
    assert table.to_parquet(tmp_path / "some.parquet", columns=["id"],
                            filter=pc.field("id") < 10) == 10
    assert pq.read_table(tmp_path / "some.parquet").column_names == ["id"]
    table.to_dataset(tmp_path / "ds", partitioning=["s"])
    assert sorted((tmp_path / "ds").iterdir())[0].name == "s=s0"
    back = pq.read_table(tmp_path / "ds").sort_by("id")
    assert back.column("id").equals(data.column("id"))
    with pytest.raises(cm.SchemaError, match="'nope'"):
        table.to_dataset(tmp_path / "ds2", partitioning=["nope"])
    db.import_parquet("again", tmp_path / "ds")
    assert db.table("again").count() == 3000
    assert not list(tmp_path.glob("*.partial"))


def test_describe_counts_rows_row_groups_and_bytes(db: cm.Database) -> None:
    db.import_arrow("t", rows(0, 2500), primary_key="id")
    with db.transaction() as tx:
        tx.insert("t", rows(5000, 3))
    db.table("t").create_index("s", kind="hash")
    info = db.table("t").describe()
    assert info["rows"] == 2503 and info["row_groups"] == 3 and info["tail_rows"] == 3
    assert info["schema"].equals(SCHEMA) and info["primary_key"] == ("id",)
    assert info["indexes"] == [{"columns": ("s",), "kind": "hash"}]
    assert rows(0, 2500).nbytes < info["stored_bytes"] < 2 * rows(0, 2500).nbytes


def test_to_arrow_reader_streams_a_snapshot_chunk_by_chunk(db: cm.Database) -> None:
    import pyarrow.compute as pc

    db.import_arrow("t", rows(0, 3500), primary_key="id")
    reader = db.table("t").to_arrow_reader(batch_size=400, columns=["s", "id"],
                                           filter=pc.field("id") < 1750)
    assert db.stats()["live_snapshots"] >= 1  # the snapshot (and the lease of its data)
    db.import_arrow("t", rows(3500, 1000), mode="append")  # after the snapshot: unseen
    batches = list(reader)
    assert max(len(b) for b in batches) <= 400 and len(batches) >= 4
    got = pa.Table.from_batches(batches).sort_by("id")
    assert got.column_names == ["s", "id"]
    assert got.column("id").to_pylist() == list(range(1750))
    del batches, got, reader
    gc.collect()
    assert db.stats()["live_snapshots"] == 0
    with pytest.raises(cm.SchemaError, match="'nope'"):
        db.table("t").to_arrow_reader(columns=["nope"])
    assert db.stats()["live_snapshots"] == 0
    assert pa.table(db.table("t")).num_rows == 4500


def test_readers_never_consumed_or_outliving_their_snapshot_leak_nothing(
        db: cm.Database, tmp_path: Path) -> None:
    db.import_arrow("t", rows(0, 3500), primary_key="id")
    with db.transaction() as tx:
        tx.insert("t", rows(9000, 5))  # tail rows too
    for _ in range(5):
        db.table("t").to_arrow_reader()  # dropped unread
        pa.RecordBatchReader.from_stream(db.table("t"))
        with pytest.raises(OSError):
            db.table("t").to_parquet(tmp_path / "no" / "such" / "dir" / "x.parquet")
    gc.collect()
    assert db.stats()["live_snapshots"] == 0
    snap = db.snapshot()
    reader = snap.table("t").to_arrow_reader(batch_size=500)
    snap.close()
    assert reader.read_all().num_rows == 3505


def test_to_parquet_writes_row_groups_of_row_group_size(db: cm.Database,
                                                        tmp_path: Path) -> None:
    db.import_arrow("t", rows(0, 3500))  # chunks of 1000 rows
    db.table("t").to_parquet(tmp_path / "one.parquet")
    assert pq.ParquetFile(tmp_path / "one.parquet").metadata.num_row_groups == 1
    db.table("t").to_parquet(tmp_path / "four.parquet", row_group_size=1000)
    groups = pq.ParquetFile(tmp_path / "four.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == \
        [1000, 1000, 1000, 500]


def test_a_row_group_overflowing_a_dictionary_index_is_a_clear_error(db: cm.Database) -> None:
    kind = pa.dictionary(pa.int8(), pa.string())

    def batch(start: int) -> pa.RecordBatch:  # 100 values: a valid int8 dictionary
        values = pa.array([f"v{i}" for i in range(start, start + 100)])
        return pa.record_batch({"d": values.dictionary_encode().cast(kind)})

    with pytest.raises(cm.SchemaError, match=r"column 'd'.*index type int8"):
        db.import_arrow("t", iter([batch(0), batch(100)]))  # 200 values in one chunk
    assert db.tables() == []
    db.import_arrow("t", iter([batch(0), batch(20)]))  # 120 distinct: fits
    assert db.table("t").count() == 200


@pytest.mark.parametrize("key", [["id"], ["a", "b"], ["s"]])
def test_upsert_of_shuffled_repeated_keys_keeps_the_last(db: cm.Database,
                                                         key: list[str]) -> None:
    """Keys of 8 bytes (one int64, two int32) go through numpy's sort, others
    through the kernel's: the same answer either way."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 2000, 6000)
    data = pa.table({"id": ids, "a": (ids // 100).astype(np.int32),
                     "b": (ids % 100).astype(np.int32), "s": [f"k{i}" for i in ids],
                     "n": np.arange(6000)})
    db.import_arrow("t", data.slice(0, 10), primary_key=key, mode="create")
    db.import_arrow("t", data, mode="upsert")
    got = db.table("t").to_arrow_table().sort_by("id")
    last = {int(i): n for n, i in enumerate(ids)}
    assert got.column("id").to_pylist() == sorted(last)
    assert got.column("n").to_pylist() == [last[i] for i in sorted(last)]
    assert db.table("t").verify() == []
    with pytest.raises(cm.ConstraintError, match="duplicate primary key"):
        db.import_arrow("u", data, primary_key=key)


def test_get_many_across_chunks_whose_dictionaries_overflow_together(tmp_path: Path) -> None:
    """Each chunk's int8 dictionary is valid, their union is not: get_many across
    them returns the rows anyway (found by the round-trip tests)."""
    kind = pa.dictionary(pa.int8(), pa.string())

    def part(start: int) -> pa.Table:
        values = pa.array([f"v{i}" for i in range(start, start + 100)])
        return pa.table({"id": pa.array(range(start, start + 100), pa.int64()),
                         "d": values.dictionary_encode().cast(kind)})

    with cm.connect(tmp_path / "db", create=True, tail_rows=0, row_group_rows=100) as db:
        db.import_arrow("t", part(0), primary_key="id")
        db.import_arrow("t", part(100), mode="append")
        got = db.table("t").get_many([150, 10, 160, 170, 20, 199, 5])
        assert got.column("id").to_pylist() == [150, 10, 160, 170, 20, 199, 5]
        assert got.column("d").to_pylist() == [f"v{i}" for i in (150, 10, 160, 170, 20, 199, 5)]
        assert got.schema.field("d").type == kind

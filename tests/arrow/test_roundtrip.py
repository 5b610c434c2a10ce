"""Round trips of every storable Arrow type, with Hypothesis-drawn schemas and tables.

Whatever goes in comes out exactly: types (with their units, time zones, precision,
widths and index types), nulls, nullability, field and schema metadata, the bits of
every float (NaN payloads, -0.0), and dictionary columns as dictionaries of their
type holding the same values (their dictionaries may be rebuilt). The paths: ``import_arrow``
out through ``to_arrow_table``, the PyCapsule stream and ``to_arrow_reader``;
Parquet in and out; closing and reopening (with and without a checkpoint, with WAL
replay, with small chunks and a tail); the import modes append, upsert and replace;
and point reads by primary keys of every key type.

Rows are compared after sorting by a row-number column the tests add (``ROW``).
"""

from __future__ import annotations

import decimal
import string
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

import colibri_mm as cm
from colibri_mm.tables.table import Table

ROW = "row_number"
"""The column every drawn table gets: the row's number, for sorting and as a key."""

EXAMPLES = max(5, settings().max_examples // 2)
"""Examples per round-trip test: half the profile's (each example makes a
database and moves up to a few thousand rows several times)."""

MAX_ROWS = 3000
TIME_ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata",
              "Australia/Lord_Howe", "Pacific/Chatham", "+05:30", "-08:00")
INTEGER_TYPES = (pa.int8(), pa.int16(), pa.int32(), pa.int64(),
                 pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())
SIMPLE_TYPES = (*INTEGER_TYPES, pa.float32(), pa.float64(), pa.bool_(), pa.date32(),
                pa.time64("us"), pa.time64("ns"), pa.string(), pa.large_string(),
                pa.binary(), pa.large_binary())
NANOS_PER_DAY = 86_400 * 10**9
_EXACT = decimal.Context(prec=40)
"""Decimal arithmetic that keeps all 38 digits (the default context rounds to 28)."""

# -- types and values ------------------------------------------------------------------


def arrow_types(parquet: bool = False) -> st.SearchStrategy[pa.DataType]:
    """Every storable column type. ``parquet``: only those Parquet can write at all
    (a FIXED_LEN_BYTE_ARRAY of length 0 is refused by the Parquet format)."""
    return st.one_of(
        st.sampled_from(SIMPLE_TYPES),
        st.builds(pa.timestamp, st.sampled_from(["s", "ms", "us", "ns"]),
                  st.none() | st.sampled_from(TIME_ZONES)),
        st.integers(1, 38).flatmap(lambda p: st.builds(pa.decimal128, st.just(p),
                                                       st.integers(0, p))),
        st.builds(pa.binary, st.integers(1 if parquet else 0, 24)),
        st.builds(pa.dictionary, st.sampled_from(INTEGER_TYPES),
                  st.sampled_from([pa.string(), pa.large_string()])),
    )


def values_of(kind: pa.DataType, parquet: bool = False) -> st.SearchStrategy[Any]:
    """Python values (never None) that build an array of type ``kind``; temporal
    values as their stored integers, so every representable value can be drawn."""
    t = pa.types
    if t.is_integer(kind):
        info = np.iinfo(kind.to_pandas_dtype())
        return st.integers(int(info.min), int(info.max))
    if t.is_float32(kind) or t.is_float64(kind):
        width = kind.bit_width
        return st.floats(width=width) | st.sampled_from(
            [-0.0, 0.0, float("nan"), -float("nan"), float("inf"), -float("inf"),
             float(np.finfo(f"f{width // 8}").smallest_subnormal)])
    if t.is_boolean(kind):
        return st.booleans()
    if t.is_timestamp(kind):
        if parquet and kind.unit == "s":
            # Parquet has no unit of seconds: pyarrow writes milliseconds, so a value
            # whose milliseconds overflow int64 cannot be written.
            return st.integers(-(2**63) // 1000 + 1, (2**63 - 1) // 1000)
        return st.integers(-(2**63), 2**63 - 1)
    if t.is_date32(kind):
        return st.integers(-(2**31), 2**31 - 1)
    if t.is_time64(kind):
        per_day = NANOS_PER_DAY // (1000 if kind.unit == "us" else 1)
        return st.integers(0, per_day - 1)
    if t.is_decimal128(kind):
        bound = 10**kind.precision - 1
        return st.integers(-bound, bound).map(
            lambda unscaled: decimal.Decimal(unscaled).scaleb(-kind.scale, _EXACT))
    if t.is_fixed_size_binary(kind):
        return st.binary(min_size=kind.byte_width, max_size=kind.byte_width)
    if t.is_string(kind) or t.is_large_string(kind):
        return st.text(max_size=12) | st.text(min_size=100, max_size=300)
    if t.is_binary(kind) or t.is_large_binary(kind):
        return st.binary(max_size=24)
    if t.is_dictionary(kind):
        return st.text(max_size=6)
    raise AssertionError(f"no values for {kind}")


def make_array(kind: pa.DataType, values: list[Any]) -> pa.Array:
    """``values`` (None for null) as an array of type ``kind``."""
    if pa.types.is_dictionary(kind):
        return pa.array(values, kind.value_type).dictionary_encode().cast(kind)
    return pa.array(values, kind)


# -- schemas and tables ------------------------------------------------------------------

_NAME_CHARACTERS = string.ascii_letters + string.digits + "_ -éß日"
_METADATA_KEYS = st.text(string.ascii_letters + "_é", min_size=1, max_size=8).filter(
    lambda k: k not in ("pandas", ROW))  # pyarrow gives "pandas" a meaning
_METADATA = st.none() | st.dictionaries(_METADATA_KEYS.map(str.encode),
                                        st.binary(max_size=16), max_size=3)


@st.composite
def schemas(draw: st.DrawFn, parquet: bool = False) -> pa.Schema:
    """1 to 8 drawn columns, then the row-number column (non-nullable) somewhere."""
    names = draw(st.lists(st.text(_NAME_CHARACTERS, min_size=1, max_size=10)
                          .filter(lambda n: n != ROW), min_size=1, max_size=8, unique=True))
    fields = [pa.field(name, draw(arrow_types(parquet)), nullable=draw(st.booleans()),
                       metadata=draw(_METADATA)) for name in names]
    fields.insert(draw(st.integers(0, len(fields))),
                  pa.field(ROW, pa.int64(), nullable=False, metadata=draw(_METADATA)))
    return pa.schema(fields, metadata=draw(_METADATA))


@st.composite
def tables(draw: st.DrawFn, schema: pa.Schema | None = None, parquet: bool = False,
           max_rows: int = MAX_ROWS, first_row: int = 0) -> pa.Table:
    """Rows of ``schema`` (drawn if None), numbered from ``first_row``.

    Each column draws a pool of up to 16 values (extremes, NaNs, empty and unicode
    strings, nulls where the column is nullable) and its rows pick from the pool
    with a generator seeded by the draw: thousands of rows stay cheap to draw.
    Dictionary columns with indices of 16 bits or more get up to 300 more distinct
    values."""
    if schema is None:
        schema = draw(schemas(parquet))
    rows = draw(st.integers(0, min(max_rows, 40)) | st.integers(0, max_rows))
    generator = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    columns = []
    for field in schema:
        if field.name == ROW:
            columns.append(pa.array(np.arange(first_row, first_row + rows, dtype=np.int64)))
            continue
        values = values_of(field.type, parquet)
        pool = draw(st.lists(st.none() | values if field.nullable else values,
                             min_size=1, max_size=16))
        if pa.types.is_dictionary(field.type) and field.type.index_type.bit_width > 8:
            # A row group is one record batch: rows whose dictionaries together
            # hold more distinct values than the index type numbers cannot be one
            # (a SchemaError naming the column, tests/arrow/test_import.py), so
            # 8-bit indices keep to the pool's 16 values per table (at most 7
            # tables go into one in these tests).
            extra = draw(st.integers(0, 300))
            pool += [f"{first_row} ☃ {i}" for i in range(extra)]
        picks = generator.integers(0, len(pool), rows)
        columns.append(make_array(field.type, [pool[i] for i in picks]))
    return pa.Table.from_arrays(columns, schema=schema)


# -- comparing -----------------------------------------------------------------------------


def comparable(table: pa.Table) -> pa.Table:
    """``table`` in a form whose ``equals`` means "exactly the same values": floats
    as their bits (``equals`` holds NaN unequal to itself and -0.0 equal to 0.0) and
    dictionary columns decoded (two encodings of the same values differ in their
    dictionaries, which a store may rebuild; the types are compared beforehand)."""
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_floating(kind):
            kind = pa.int32() if pa.types.is_float32(kind) else pa.int64()
            column = pa.chunked_array([chunk.view(kind) for chunk in column.chunks], kind)
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        fields.append(field.with_type(kind))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def assert_same(got: pa.Table, expected: pa.Table, where: str = "") -> None:
    """``got`` holds exactly ``expected``'s rows (in any order), schema and metadata."""
    assert got.schema.equals(expected.schema, check_metadata=True), \
        f"{where}: schema\n{got.schema}\n{got.schema.metadata}\nexpected\n" \
        f"{expected.schema}\n{expected.schema.metadata}"
    assert got.num_rows == expected.num_rows, f"{where}: {got.num_rows} rows, expected " \
        f"{expected.num_rows}"
    got_rows = comparable(got).sort_by(ROW)
    expected_rows = comparable(expected).sort_by(ROW)
    if not got_rows.equals(expected_rows, check_metadata=True):
        for name in expected.column_names:
            got_column, expected_column = got_rows.column(name), expected_rows.column(name)
            if not got_column.equals(expected_column):
                differs = pc.invert(pc.fill_null(pc.equal(got_column, expected_column), False))
                first = pc.index(differs, True).as_py()
                raise AssertionError(
                    f"{where}: column {name!r} ({expected.schema.field(name).type}) differs "
                    f"first at row {first}: {got_column[first]!r} != "
                    f"{expected_column[first]!r}")
        raise AssertionError(f"{where}: the tables differ")


# -- databases ------------------------------------------------------------------------------


@contextmanager
def directory() -> Iterator[Path]:
    """A new directory for one Hypothesis example (a function-scoped ``tmp_path`` is
    shared by every example)."""
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as path:
        yield Path(path)


LAYOUTS = st.fixed_dictionaries({"row_group_rows": st.integers(7, 64) | st.integers(7, 1000),
                                 "tail_rows": st.sampled_from([0, 16, 64, 256, 1024])})
"""Options that decide how rows are stored: chunk size, and the tail (writes of at
most ``tail_rows / 4`` rows are kept one value per row; 0 turns the tail off)."""


SOURCE_FORMS = ("table", "reader", "batches", "batches encoded apart")


def sources(table: pa.Table, form: str, batch_rows: int) -> Any:
    """``table`` as import_arrow takes it in ``form`` (one of :data:`SOURCE_FORMS`;
    "batches encoded apart": each batch has dictionaries of its own)."""
    if form == "table" or table.num_rows == 0:
        return table
    batches = table.to_batches(max_chunksize=batch_rows)
    if form == "reader":
        return pa.RecordBatchReader.from_batches(table.schema, batches)
    if form == "batches encoded apart":
        batches = [encoded_apart(batch) for batch in batches]
    return iter(batches)


def encoded_apart(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with its dictionary columns encoded again, in reverse order of first
    appearance (so its dictionaries differ from those of every other batch)."""
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            values = column.cast(field.type.value_type)
            reverse = values.take(pa.array(np.arange(len(values))[::-1]))
            encoded = reverse.dictionary_encode()
            column = pa.DictionaryArray.from_arrays(
                encoded.indices.take(pa.array(np.arange(len(values))[::-1])),
                encoded.dictionary).cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def read_through(table: Table, way: str, batch_rows: int) -> pa.Table:
    """Every row of ``table``, read ``way``."""
    if way == "to_arrow_table":
        return table.to_arrow_table()
    if way == "pycapsule":
        return pa.table(table)
    reader = table.to_arrow_reader(batch_rows)
    batches = list(reader)
    assert all(batch.num_rows <= batch_rows for batch in batches)
    return pa.Table.from_batches(batches, reader.schema)


EXPORTS = ("to_arrow_table", "pycapsule", "to_arrow_reader")


def assert_table_holds(db: cm.Database, name: str, expected: pa.Table, batch_rows: int,
                       where: str) -> None:
    """Table ``name`` reads back as ``expected`` every way, and counts it."""
    table = db.table(name)
    assert table.schema.equals(expected.schema, check_metadata=True), where
    assert table.count() == expected.num_rows, where
    for way in EXPORTS:
        assert_same(read_through(table, way, batch_rows), expected, f"{where}, {way}")


# -- 1. import_arrow and the exports -------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(table=tables(), layout=LAYOUTS, form=st.sampled_from(SOURCE_FORMS),
       batch_rows=st.integers(1, 2000))
def test_import_arrow_round_trips_exactly(table: pa.Table, layout: dict[str, Any], form: str,
                                          batch_rows: int) -> None:
    with directory() as path, cm.connect(path / "db", create=True, **layout) as db:
        result = db.import_arrow("t", sources(table, form, batch_rows))
        assert result.rows == table.num_rows
        assert_table_holds(db, "t", table, batch_rows, "imported")


# -- 2. Parquet ------------------------------------------------------------------------------


def as_parquet_keeps(table: pa.Table) -> pa.Table:
    """``table`` as a Parquet file written by pyarrow reads back. The two changes are
    Parquet's, not ours: Parquet's TIMESTAMP has no unit of seconds, so pyarrow
    stores and reads timestamp[s] as timestamp[ms] (pyarrow's own
    test_parquet_version_timestamp_differences: "seconds should be coerced to
    milliseconds"); and a dictionary of large_string reads back as a dictionary of
    string (Parquet keeps dictionaries as an encoding, not a type: apache/arrow
    issue 37875). Everything else must come back exactly."""
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit == "s":
            kind = pa.timestamp("ms", kind.tz)
        elif pa.types.is_dictionary(kind) and pa.types.is_large_string(kind.value_type):
            kind = pa.dictionary(kind.index_type, pa.string())
        fields.append(field.with_type(kind))
        columns.append(column.cast(kind) if kind != field.type else column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


@settings(max_examples=EXAMPLES)
@given(table=tables(parquet=True), layout=LAYOUTS, row_group_size=st.integers(1, 4000))
def test_parquet_round_trips_exactly(table: pa.Table, layout: dict[str, Any],
                                     row_group_size: int) -> None:
    expected = as_parquet_keeps(table)
    with directory() as path, cm.connect(path / "db", create=True, **layout) as db:
        # A key=value directory above a file is no partition of it.
        source = path / "day=1" / "in.parquet"
        source.parent.mkdir()
        pq.write_table(table, source, row_group_size=row_group_size)
        assert_same(pq.read_table(source), expected, "pyarrow alone")
        db.import_parquet("t", source)
        assert_table_holds(db, "t", expected, 1000, "imported from Parquet")
        assert db.table("t").to_parquet(path / "out.parquet") == table.num_rows
        assert_same(pq.read_table(path / "out.parquet"), expected, "exported to Parquet")
        db.import_parquet("u", path / "out.parquet")
        assert_table_holds(db, "u", expected, 1000, "imported from the export")


# -- 3. closing and reopening ------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(data=st.data(), layout=LAYOUTS, checkpoint_first=st.booleans(),
       checkpoint_on_close=st.booleans())
def test_rows_survive_reopening(data: st.DataObject, layout: dict[str, Any],
                                checkpoint_first: bool, checkpoint_on_close: bool) -> None:
    table = data.draw(tables(), "table")
    schema = table.schema
    # Small writes after the import: each goes to the tail when it has at most
    # tail_rows / 4 rows, and the tail folds into a chunk when full.
    small = max(1, layout["tail_rows"] // 4)
    more = [table]
    for _ in range(data.draw(st.integers(0, 6), "small appends")):
        more.append(data.draw(tables(schema, max_rows=small,
                                     first_row=sum(t.num_rows for t in more)), "append"))
    expected = pa.concat_tables(more)
    options = dict(layout, checkpoint_on_close=checkpoint_on_close)
    with directory() as path:
        with cm.connect(path / "db", create=True, **options) as db:
            db.import_arrow("t", table)
            if checkpoint_first:
                db.checkpoint()
            for rows in more[1:]:
                db.import_arrow("t", rows, mode="append")
            assert_table_holds(db, "t", expected, 500, "before closing")
        with cm.connect(path / "db", **options) as db:
            assert_table_holds(db, "t", expected, 500, "reopened")
            db.checkpoint()
            assert_table_holds(db, "t", expected, 500, "checkpointed")
        with cm.connect(path / "db", readonly=True) as db:
            assert_table_holds(db, "t", expected, 500, "reopened read-only")


# -- 4. modes -----------------------------------------------------------------------------------


def last_of_each_key(*parts: pa.Table) -> pa.Table:
    """The rows of ``parts`` (in order) keeping, of rows with the same ``ROW``, the
    last: what upserting them one after the other leaves."""
    rows = pa.concat_tables(parts)
    last: dict[int, int] = {}
    for position, key in enumerate(rows.column(ROW).to_pylist()):
        last[key] = position
    return rows.take(pa.array(sorted(last.values()), pa.int64()))


@settings(max_examples=EXAMPLES)
@given(data=st.data(), layout=LAYOUTS)
def test_append_upsert_and_replace_round_trip(data: st.DataObject,
                                              layout: dict[str, Any]) -> None:
    first = data.draw(tables(max_rows=1500), "first")
    schema = first.schema
    second = data.draw(tables(schema, max_rows=1500, first_row=first.num_rows), "second")
    with directory() as path, cm.connect(path / "db", create=True, **layout) as db:
        # append: a keyless table takes the second table's rows after the first's.
        db.import_arrow("kept", first)
        db.import_arrow("kept", second, mode="append")
        both = pa.concat_tables([first, second])
        assert_table_holds(db, "kept", both, 700, "appended")
        # upsert: rows with a key already present replace it; of rows repeating a
        # key in one import, the last wins.
        db.import_arrow("keyed", first, primary_key=ROW)
        span = data.draw(st.integers(1, max(1, first.num_rows + second.num_rows)), "span")
        generator = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
        keys = generator.integers(0, span, second.num_rows, dtype=np.int64)
        update = second.set_column(schema.get_field_index(ROW), schema.field(ROW),
                                   pa.array(keys))
        db.import_arrow("keyed", update, mode="upsert")
        assert_table_holds(db, "keyed", last_of_each_key(first, update), 700, "upserted")
        again = data.draw(tables(schema, max_rows=40), "small upsert")
        db.import_arrow("keyed", again, mode="upsert")
        assert_table_holds(db, "keyed", last_of_each_key(first, update, again), 700,
                           "upserted again")
        # replace: the rows and the schema are those of the new data.
        other = data.draw(tables(max_rows=1500), "replacement")
        db.import_arrow("keyed", other, mode="replace")
        assert_table_holds(db, "keyed", other, 700, "replaced")
        assert db.table("keyed").primary_key == (ROW,)  # kept: the new data has ROW


# -- primary keys ----------------------------------------------------------------------------


KEY_TYPES = st.one_of(
    st.sampled_from([*INTEGER_TYPES, pa.bool_(), pa.date32(), pa.time64("us"),
                     pa.time64("ns"), pa.string(), pa.large_string(), pa.binary(),
                     pa.large_binary()]),
    st.builds(pa.timestamp, st.sampled_from(["s", "ms", "us", "ns"]),
              st.none() | st.sampled_from(TIME_ZONES)),
    st.integers(1, 38).flatmap(lambda p: st.builds(pa.decimal128, st.just(p),
                                                   st.integers(0, p))),
    st.builds(pa.binary, st.integers(1, 16)),
)
"""Every type a primary key column may have."""

# Keys go to table.get as the Python values Arrow gives for them, so temporal keys
# stay where those values exist (datetime's years 1 to 9999, or int64 nanoseconds,
# a day less at each end for time zones) and are exact (whole microseconds where
# Python's datetime has no nanoseconds).
_SECONDS_OF_DATETIME = (-62_135_596_800 + 86_400, 253_402_300_799 - 86_400)
_PER_SECOND = {"s": 1, "ms": 1000, "us": 10**6, "ns": 10**9}


def key_values(kind: pa.DataType) -> st.SearchStrategy[Any]:
    """Values of key column type ``kind`` whose Python form is exact."""
    t = pa.types
    if t.is_timestamp(kind):
        low, high = _SECONDS_OF_DATETIME
        per = _PER_SECOND[kind.unit]
        step = 1000 if kind.unit == "ns" else 1
        day = 86_400 * per  # room for a time zone's offset (pandas for nanoseconds)
        low, high = max(low * per, -(2**63) + day), min(high * per, 2**63 - 1 - day)
        return st.integers(low // step + 1, high // step).map(lambda v: v * step)
    if t.is_date32(kind):
        return st.integers(-719_162, 2_932_896)  # 0001-01-01 .. 9999-12-31
    if t.is_time64(kind) and kind.unit == "ns":
        return st.integers(0, NANOS_PER_DAY // 1000 - 1).map(lambda v: v * 1000)
    if t.is_decimal128(kind):
        # Every digit counts: keys.encode_key once rounded to 28 digits.
        bound = 10 ** kind.precision - 1
        return st.integers(-bound, bound).map(
            lambda unscaled: decimal.Decimal(unscaled).scaleb(-kind.scale, _EXACT))
    return values_of(kind)


@settings(max_examples=EXAMPLES)
@given(data=st.data(), layout=LAYOUTS, reopen=st.booleans())
def test_primary_keys_of_every_type_find_their_rows(data: st.DataObject,
                                                     layout: dict[str, Any],
                                                     reopen: bool) -> None:
    key_types = data.draw(st.lists(KEY_TYPES, min_size=1, max_size=3), "key types")
    key_names = [f"k{i}" for i in range(len(key_types))]
    rows = data.draw(st.integers(1, 1500), "rows")
    generator = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
    columns = {}
    for name, kind in zip(key_names, key_types, strict=True):
        # A few distinct values per column (more for the last one) make repeated
        # prefixes, which composite keys must still tell apart.
        size = 64 if name == key_names[-1] else 4
        pool = data.draw(st.lists(key_values(kind), min_size=1, max_size=size), name)
        columns[name] = make_array(kind, [pool[i] for i in
                                          generator.integers(0, len(pool), rows)])
    columns[ROW] = pa.array(np.arange(rows, dtype=np.int64))
    columns["payload"] = pa.array([f"row {i} ü" for i in range(rows)])
    columns["label"] = pa.array([None, "a", "b", "ü"] * rows, pa.string())[:rows] \
        .dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))
    drawn = pa.table(columns)
    # One row per distinct key.
    firsts = drawn.group_by(key_names, use_threads=False).aggregate([(ROW, "min")])
    table = drawn.take(firsts.column(f"{ROW}_min").combine_chunks().sort())
    table = table.set_column(table.schema.get_field_index(ROW), ROW,
                             pa.array(np.arange(table.num_rows, dtype=np.int64)))
    with directory() as path:
        with cm.connect(path / "db", create=True, **layout) as db:
            db.import_arrow("t", table, primary_key=key_names)
            if not reopen:
                check_keys(db.table("t"), table, key_names, data.draw)
        if reopen:
            with cm.connect(path / "db", **layout) as db:
                check_keys(db.table("t"), table, key_names, data.draw)


def check_keys(handle: Table, table: pa.Table, key_names: list[str],
               draw: Callable[..., Any]) -> None:
    """``get`` and ``get_many`` find sampled rows of ``table`` by their keys."""
    sample = draw(st.lists(st.integers(0, table.num_rows - 1), min_size=1, max_size=20),
                  "sampled rows")
    expected = table.take(pa.array(sample, pa.int64()))
    python_rows = expected.to_pylist()
    keys = [tuple(row[name] for name in key_names) if len(key_names) > 1
            else row[key_names[0]] for row in python_rows]
    for key, row in zip(keys, python_rows, strict=True):
        assert handle.get(key) == row, f"get({key!r})"
    got = handle.get_many(keys)
    assert got.schema.equals(expected.schema, check_metadata=True)
    assert comparable(got).equals(comparable(expected), check_metadata=True), "get_many"


# -- regressions ---------------------------------------------------------------------------


def test_one_parquet_file_below_a_key_value_directory_gets_no_partition_column(
        tmp_path: Path) -> None:
    """A file's directories are no hive partitions of it (as for pq.read_table); the
    import used to add a column ``k`` of 1s from the path .../k=1/data.parquet."""
    table = pa.table({ROW: pa.array([0, 1], pa.int64()), "x": ["a", "b"]})
    (tmp_path / "k=1").mkdir()
    pq.write_table(table, tmp_path / "k=1" / "data.parquet")
    with cm.connect(tmp_path / "db", create=True) as db:
        db.import_parquet("t", tmp_path / "k=1" / "data.parquet")
        assert_same(db.table("t").to_arrow_table(), table, "one file")
        db.import_parquet("dataset", tmp_path / "k=1")  # a directory: its own partitions
        assert_same(db.table("dataset").to_arrow_table(), table, "its directory")


def test_a_tail_with_more_distinct_values_than_dictionary_indices_number() -> None:
    """Tail rows of several writes, each a valid dictionary<int8, string> column of
    100 values, hold 500 distinct values, more than int8 indices can number: they
    read back (the tail's column in pieces, each with its own dictionary), where
    every read of the table used to fail."""
    kind = pa.dictionary(pa.int8(), pa.string())
    schema = pa.schema([(ROW, pa.int64()), ("d", kind)], metadata={b"m": b"1"})
    writes = [pa.table({ROW: pa.array(range(start, start + 100), pa.int64()),
                        "d": pa.array([f"v{i} é" for i in range(start, start + 100)])
                        .dictionary_encode().cast(kind)}, schema=schema)
              for start in range(0, 500, 100)]
    expected = pa.concat_tables(writes)
    with directory() as path:
        with cm.connect(path / "db", create=True, tail_rows=1024) as db:
            db.import_arrow("t", writes[0], primary_key=ROW)
            for rows in writes[1:]:
                db.import_arrow("t", rows, mode="append")
            assert db.table("t").describe()["tail_rows"] == 500
            assert_table_holds(db, "t", expected, 128, "in the tail")
            assert db.table("t").get(499) == {ROW: 499, "d": "v499 é"}
        with cm.connect(path / "db", tail_rows=1024) as db:
            assert_table_holds(db, "t", expected, 128, "reopened")

"""Primary-key encoding: whole columns and single tuples give the same bytes, and
the bytes sort like the tuples of values."""

import datetime
import decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import colibri_mm as cm
from colibri_mm.tables.keys import encode_key, encode_keys

UTC = datetime.UTC
PARTS = {
    "i8": (pa.int8(), st.integers(-128, 127)),
    "i64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "u16": (pa.uint16(), st.integers(0, 2**16 - 1)),
    "u64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "flag": (pa.bool_(), st.booleans()),
    "day": (pa.date32(), st.dates(datetime.date(1, 1, 1), datetime.date(9999, 12, 31))),
    "ts": (pa.timestamp("us", tz="UTC"),
           st.datetimes(datetime.datetime(1677, 9, 22), datetime.datetime(2262, 4, 10),
                        timezones=st.just(UTC))),
    "price": (pa.decimal128(12, 3),
              st.decimals(min_value=-10**8, max_value=10**8, places=3, allow_nan=False)),
    "name": (pa.string(), st.text(max_size=6)),
    "blob": (pa.large_binary(), st.binary(max_size=6)),
    "digest": (pa.binary(4), st.binary(min_size=4, max_size=4)),
}


@st.composite
def keyed_rows(draw: st.DrawFn) -> tuple[pa.Schema, list[str], list[tuple[object, ...]]]:
    names = draw(st.lists(st.sampled_from(sorted(PARTS)), min_size=1, max_size=3,
                          unique=True))
    schema = pa.schema([(n, PARTS[n][0]) for n in names])
    rows = draw(st.lists(st.tuples(*[PARTS[n][1] for n in names]), min_size=1, max_size=25))
    return schema, names, rows


@given(keyed_rows())
def test_columns_and_tuples_encode_alike_and_keep_order(
        case: tuple[pa.Schema, list[str], list[tuple[object, ...]]]) -> None:
    schema, names, rows = case
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema)
    offsets, data = encode_keys(table.slice(0), names)
    keys = [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(rows))]
    assert keys == [encode_key(schema, names, r) for r in rows]
    assert sorted(range(len(rows)), key=lambda i: (keys[i], i)) == \
        sorted(range(len(rows)), key=lambda i: (rows[i], i))


def test_a_sliced_batch_encodes_its_own_rows() -> None:
    table = pa.table({"s": ["a", "bb", "ccc", "d"], "n": pa.array([1, 2, 3, 4], pa.int16())})
    offsets, data = encode_keys(table.slice(1, 2), ["s", "n"])
    schema = table.schema
    assert data[offsets[0]:offsets[1]].tobytes() == encode_key(schema, ["s", "n"], ["bb", 2])
    assert data[offsets[1]:offsets[2]].tobytes() == encode_key(schema, ["s", "n"], ["ccc", 3])


def test_bad_keys_are_named() -> None:
    schema = pa.schema([("id", pa.int8()), ("s", pa.string())])
    with pytest.raises(cm.ConstraintError, match="primary key column 's' is null in row 1"):
        encode_keys(pa.table({"id": pa.array([1, 2], pa.int8()), "s": ["a", None]}),
                    ["id", "s"])
    with pytest.raises(cm.ConstraintError, match="'id' is None"):
        encode_key(schema, ["id", "s"], [None, "a"])
    with pytest.raises(OverflowError, match="column 'id': 300 does not fit type int8"):
        encode_key(schema, ["id"], [300])
    with pytest.raises(TypeError, match="column 's': 5 does not fit type string"):
        encode_key(schema, ["s"], [5])
    with pytest.raises(ValueError, match="has 2 columns"):
        encode_key(schema, ["id", "s"], [1])
    assert encode_key(pa.schema([("d", pa.decimal128(5, 2))]), ["d"],
                      [decimal.Decimal("-0.01")]) < \
        encode_key(pa.schema([("d", pa.decimal128(5, 2))]), ["d"], [decimal.Decimal("0")])


def test_the_int64_point_read_key_agrees_with_the_general_encoding() -> None:
    from colibri_mm.tables.catalog import TableDef
    from colibri_mm.tables.keys import encode_key
    from colibri_mm.tables.rows import encoded_key, index_prefix

    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    definition = TableDef(7, "t", schema, ("id",))
    assert definition.int64_key
    assert not TableDef(7, "t", schema, ("v",)).int64_key
    assert not TableDef(7, "t", schema, ("id", "v")).int64_key
    for key in [0, 1, -1, 2**63 - 1, -(2**63), 12345678901234, -98765]:
        assert encoded_key(definition, key) == index_prefix(definition) + encode_key(
            schema, ("id",), (key,)), key
    with pytest.raises(OverflowError):
        encoded_key(definition, 2**63)  # the general path names what is wrong


def test_decimal_keys_of_38_digits_stay_distinct(tmp_path: Path) -> None:
    """The key encoding scaled decimals in the default context (28 digits), so
    10**28 and 10**28 + 1 found the same row (found by the round-trip tests)."""
    keys = [decimal.Decimal(10**28), decimal.Decimal(10**28 + 1),
            decimal.Decimal(-(10**37) + 7), decimal.Decimal(10**38 - 1)]
    with cm.connect(tmp_path / "db", create=True) as db:
        db.import_arrow("t", pa.table({"k": pa.array(keys, pa.decimal128(38, 0)),
                                       "v": ["a", "b", "c", "d"]}), primary_key="k")
        assert [db.table("t").get(k)["v"] for k in keys] == ["a", "b", "c", "d"]
        with db.transaction() as tx:
            tx.update("t", keys[1], {"v": "changed"})
        assert db.table("t").get(keys[0])["v"] == "a"

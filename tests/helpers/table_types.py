"""A table schema with a column of every supported Arrow type, for table tests."""

import pyarrow as pa

EVERY_TYPE = pa.schema([
    ("i8", pa.int8()), ("i16", pa.int16()), ("i32", pa.int32()), ("i64", pa.int64()),
    ("u8", pa.uint8()), ("u16", pa.uint16()), ("u32", pa.uint32()), ("u64", pa.uint64()),
    ("f32", pa.float32()), ("f64", pa.float64()), ("flag", pa.bool_()),
    ("ts_s", pa.timestamp("s")), ("ts_ms_utc", pa.timestamp("ms", tz="UTC")),
    ("ts_us_paris", pa.timestamp("us", tz="Europe/Paris")), ("ts_ns", pa.timestamp("ns")),
    ("day", pa.date32()), ("t_us", pa.time64("us")), ("t_ns", pa.time64("ns")),
    ("money", pa.decimal128(18, 4)), ("s", pa.string()), ("ls", pa.large_string()),
    ("b", pa.binary()), ("lb", pa.large_binary()), ("fsb", pa.binary(16)),
    ("cat", pa.dictionary(pa.int32(), pa.string())),
], metadata={b"owner": b"analytics"})
"""Every type a table column may have (with schema metadata, which must survive)."""

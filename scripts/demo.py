"""End-to-end demo of what colibri-mm does today (run by ``make run``).

Until the server lands, the main job exercises what exists: the key/value store
(transactions, snapshots, a reopen that replays the WAL), a table (bulk insert,
point reads, a filtered scan, an index) and a Parquet import and export in a
temporary directory, and the kernels
the engine is built on (page checksums, in-page search, WAL framing), each checked
against its reference and timed on this machine.
"""

import tempfile
import time
from pathlib import Path

import numpy as np

import colibri_mm
from colibri_mm.kernels import checksum, checksum_reference, search, walcodec


def _rate(nbytes: float, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:6.2f} GB/s"


def kv_demo(directory: Path) -> None:
    """Transactions, a snapshot and a reopen of a small key/value store."""
    with colibri_mm.connect(directory, create=True, durability="normal") as db:
        start = time.perf_counter()
        for i in range(10_000):
            db.kv.put(f"user:{i:05}", f"score={i % 97}")
        elapsed = time.perf_counter() - start
        print(f"key/value: 10000 one-put transactions (durability normal): "
              f"{10_000 / elapsed:,.0f} commits/s")
        with db.snapshot() as snap:
            with db.transaction() as tx:
                tx.kv.put("user:00001", "score=1000")
                tx.kv.delete("user:00002")
            print(f"snapshot still reads {snap.kv.get('user:00001')!r}; "
                  f"the database now reads {db.kv.get('user:00001')!r}")
    with colibri_mm.connect(directory) as db:
        first = list(db.kv.scan(prefix="user:0000"))
        stats = db.stats()
        print(f"reopened: replayed {stats['recovery_transactions']} transactions in "
              f"{stats['recovery_seconds'] * 1000:.0f} ms; scan of prefix 'user:0000': "
              f"{len(first)} keys, first {first[0]!r}")


def table_demo(directory: Path) -> None:
    """A table: one bulk insert, point reads, a filtered scan and a secondary index."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = 200_000
    rng = np.random.default_rng(7)
    rows = pa.table({"id": np.arange(n), "x": rng.random(n),
                     "city": rng.choice(["oslo", "lima", "pune"], n)})
    with colibri_mm.connect(directory, create=True) as db:
        table = db.create_table("events", rows.schema, primary_key="id")
        start = time.perf_counter()
        with db.transaction() as tx:
            tx.insert("events", rows)
        elapsed = time.perf_counter() - start
        print(f"table: inserted {n:,} rows in one transaction: {n / elapsed:,.0f} rows/s")
        start = time.perf_counter()
        for key in range(0, n, n // 1000):
            assert table.get(key) is not None
        elapsed = time.perf_counter() - start
        print(f"table: 1,000 point reads by primary key: {1000 / elapsed:,.0f} gets/s")
        high = table.count(pc.field("x") > 0.5)
        table.create_index("city")
        print(f"table: {high:,} rows with x > 0.5; {table.find({'city': 'lima'}).num_rows:,} "
              "rows in lima, found through a secondary index")


def arrow_demo(directory: Path) -> None:
    """Parquet in and out: a 1M-row file imported in one transaction, read back
    without copies, and exported again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 1_000_000
    rng = np.random.default_rng(11)
    trades = pa.table({"id": np.arange(n), "price": rng.random(n) * 100,
                       "qty": rng.integers(1, 500, n, dtype=np.int32),
                       "symbol": rng.choice(["ACME", "GLOBEX", "INITECH"], n)})
    source = directory.parent / "trades.parquet"
    pq.write_table(trades, source)
    with colibri_mm.connect(directory, create=True) as db:
        result = db.import_parquet("trades", source, primary_key="id")
        print(f"arrow: imported {result.rows:,} rows from Parquet in one transaction: "
              f"{result.rows / result.seconds:,.0f} rows/s")
        db.checkpoint()
        start = time.perf_counter()
        back = db.table("trades").to_arrow_table()
        elapsed = time.perf_counter() - start
        assert back.sort_by("id").equals(trades)
        print(f"arrow: read all {back.num_rows:,} rows back as a pyarrow.Table in "
              f"{elapsed * 1000:.1f} ms (columns point into the mapped file)")
        written = db.table("trades").to_parquet(directory.parent / "export.parquet")
        print(f"arrow: exported {written:,} rows to Parquet; "
              f"{db.table('trades').describe()['row_groups']} row groups stored")


def main() -> None:
    """Run the demo and print what each step did."""
    print(f"colibri-mm {colibri_mm.__version__}; CRC-32C: {checksum.default_implementation()}")
    with tempfile.TemporaryDirectory(prefix="colibri-demo-") as tmp:
        kv_demo(Path(tmp) / "db")
        table_demo(Path(tmp) / "tables")
        arrow_demo(Path(tmp) / "arrow")
    rng = np.random.default_rng(2026)

    pages = rng.integers(0, 256, 64 << 20, dtype=np.uint8)
    checksum.crc32c_pages(pages[: 1 << 16], 8192)  # compile before timing
    start = time.perf_counter()
    sums = checksum.crc32c_pages(pages, 8192)
    elapsed = time.perf_counter() - start
    assert sums[5] == checksum_reference.crc32c(pages[5 * 8192 : 6 * 8192])
    print(f"checksummed {sums.size} pages of 8 KiB in one call: {_rate(pages.size, elapsed)}")

    keys = np.sort(rng.integers(0, 1 << 40, 1_000_000))
    probes = np.concatenate([keys[::10], rng.integers(0, 1 << 40, 100_000)])
    search.lookup_many(keys, probes[:10])
    start = time.perf_counter()
    found = search.lookup_many(keys, probes)
    elapsed = time.perf_counter() - start
    print(f"looked up {probes.size} keys in a 1M-key page: {int((found >= 0).sum())} found, "
          f"{probes.size / elapsed / 1e6:.1f} M keys/s")

    n = 100_000
    payload = rng.integers(0, 256, n * 100, dtype=np.uint8)
    offsets = np.arange(n + 1, dtype=np.int64) * 100
    types = np.ones(n, np.uint8)
    lsns = np.arange(1, n + 1, dtype=np.uint64)
    walcodec.encode(payload[:100], offsets[:2], types[:1], lsns[:1], segment=1)
    start = time.perf_counter()
    framed = walcodec.encode(payload, offsets, types, lsns, segment=1)
    elapsed = time.perf_counter() - start
    decoded = walcodec.decode(framed, segment=1)
    assert decoded.status == walcodec.DecodeStatus.OK
    assert np.array_equal(decoded.payload, payload)
    print(f"framed {n} WAL records of 100 bytes ({framed.size} bytes): "
          f"{_rate(payload.size, elapsed)}; decoded back: {len(decoded)} records, "
          f"status {decoded.status.name}")

    torn = walcodec.decode(framed[: framed.size // 2 + 7], segment=1)
    print(f"a torn tail stops cleanly: {len(torn)} whole records, status {torn.status.name}")


if __name__ == "__main__":
    main()

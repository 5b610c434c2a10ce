"""Kernel benchmarks: CRC-32C, page search and WAL framing against their anchors.

Anchors: the ``crc32c`` package (whole buffer, and once per page in a Python loop),
``np.searchsorted``, and a fixed bar of 1 GB/s for WAL encoding. Informational lines
(no target) put the CRC beside numpy's read bandwidth on the same buffer, and report
sorted probes, variable-length key search and WAL decoding. Inputs come from a fixed
seed; each kernel's answer is checked against its anchor before it is timed.

Run as ``python -m perf.bench_kernels`` from the repository root; prints JSON lines.
"""

import bisect
from collections.abc import Callable
from functools import partial
from importlib.metadata import version

import crc32c as crc32c_package
import numpy as np

from colibri_mm.kernels import checksum, search, walcodec
from perf.harness import GB, best_times, log, report

MIB = 1 << 20
SEED = 20240601
CRC_PACKAGE = f"crc32c {version('crc32c')} (crc32c.crc32c)"
SEARCHSORTED = f"numpy {np.__version__} np.searchsorted"
WAL_TARGET_GBPS = 1.0
"""The issue's bar for WAL encoding, in GB/s of payload."""


def _compare(benchmark: str, measures: str, unit: str, amount: float,
             ours: Callable[[], object], anchor_name: str, anchor: Callable[[], object],
             target_ratio: float | None, repeat: int) -> None:
    """Time ``ours`` and ``anchor`` side by side; report ``amount`` per second of each."""
    ours_s, anchor_s = best_times([ours, anchor], repeat)
    report(benchmark, measures, unit, amount / ours_s, anchor=anchor_name,
           anchor_value=amount / anchor_s, target_ratio=target_ratio, repeat=repeat)


def _crc_per_page(view: memoryview, page_size: int) -> list[int]:
    """The anchor for page checksums: the package called once per page."""
    return [crc32c_package.crc32c(view[i:i + page_size])
            for i in range(0, len(view), page_size)]


def bench_crc32c(rng: np.random.Generator, repeat: int = 7) -> None:
    """Whole-buffer CRC-32C, and the memory bandwidth it is bounded by."""
    buf = rng.integers(0, 256, 256 * MIB, dtype=np.uint8)
    assert checksum.crc32c(buf) == crc32c_package.crc32c(buf.data)
    words = buf.view(np.uint64)
    times = best_times([partial(checksum.crc32c, buf), partial(crc32c_package.crc32c, buf.data),
                        words.sum], repeat)
    ours, anchor, memory = (buf.nbytes / GB / t for t in times)
    measures = f"CRC-32C of a 256 MiB buffer, one call ({checksum.default_implementation()})"
    report("crc32c", measures, "GB/s", ours, anchor=CRC_PACKAGE, anchor_value=anchor,
           target_ratio=1.0, repeat=repeat)
    report("crc32c vs memory", "informational: our CRC-32C against reading the same "
           "buffer with numpy (the physical limit)", "GB/s", ours,
           anchor="numpy sum of the buffer viewed as uint64", anchor_value=memory,
           repeat=repeat)


def bench_crc32c_pages(rng: np.random.Generator, repeat: int = 7) -> None:
    """CRC-32C of every page of a 64 MiB buffer in one call, per page size."""
    buf = rng.integers(0, 256, 64 * MIB, dtype=np.uint8)
    view = buf.data
    for page_size in (8192, 65536):
        ours = partial(checksum.crc32c_pages, buf, page_size)
        anchor = partial(_crc_per_page, view, page_size)
        assert np.array_equal(ours(), anchor())
        _compare(f"crc32c_pages {page_size}",
                 f"CRC-32C of every {page_size}-byte page of a 64 MiB buffer, one call",
                 "GB/s", buf.nbytes / GB, ours, f"{CRC_PACKAGE}, a Python loop over pages",
                 anchor, 1.0, repeat)


def bench_search_numeric(rng: np.random.Generator, n: int = 1_000_000,
                         repeat: int = 7) -> None:
    """Batched search of int64 probes: random order (the target) and sorted."""
    info = np.iinfo(np.int64)
    hay = np.sort(rng.integers(info.min, info.max, n, dtype=np.int64))
    keys = rng.integers(info.min, info.max, n, dtype=np.int64)
    for label, probes, target in (("random", keys, 1.0), ("sorted", np.sort(keys), None)):
        ours = partial(search.search_many, hay, probes)
        anchor = partial(np.searchsorted, hay, probes)
        assert np.array_equal(ours(), anchor())
        name = "search_many" if target else f"search_many ({label} probes)"
        prefix = "" if target else "informational: "
        _compare(name, f"{prefix}{n:,} {label} int64 probes in {n:,} sorted int64 keys",
                 "keys/s", n, ours, SEARCHSORTED, anchor, target, repeat)


def _random_strings(rng: np.random.Generator, n: int, low: int, high: int) -> list[bytes]:
    """``n`` random byte strings of ``low``..``high`` bytes."""
    lengths = rng.integers(low, high + 1, n)
    ends = np.cumsum(lengths).tolist()
    data = rng.integers(0, 256, ends[-1], dtype=np.uint8).tobytes()
    return [data[end - size:end] for end, size in zip(ends, lengths.tolist(), strict=True)]


def bench_search_varlen(rng: np.random.Generator, n: int = 1_000_000,
                        repeat: int = 5) -> None:
    """Batched search of variable-length byte probes (numpy has no equivalent)."""
    page = sorted(_random_strings(rng, n, 8, 24))
    probes = _random_strings(rng, n, 8, 24)
    offsets, data = search.pack_varlen(page)
    key_offsets, key_data = search.pack_varlen(probes)
    ours = partial(search.search_many_varlen, offsets, data, key_offsets, key_data)
    positions = ours()
    assert all(positions[i] == bisect.bisect_left(page, probes[i]) for i in range(0, n, 997))
    (seconds,) = best_times([ours], repeat)
    report("search_many_varlen", f"informational: {n:,} random probes of 8..24 bytes in "
           f"{n:,} sorted keys of 8..24 bytes; no anchor", "keys/s", n / seconds,
           repeat=repeat)


def bench_walcodec(rng: np.random.Generator, n: int = 100_000, size: int = 100,
                   repeat: int = 15) -> None:
    """Framing a batch of WAL records (against the 1 GB/s bar), and decoding it."""
    payload = rng.integers(0, 256, n * size, dtype=np.uint8)
    offsets = np.arange(n + 1, dtype=np.int64) * size
    types = np.ones(n, np.uint8)
    lsns = np.arange(n, dtype=np.uint64)
    encode = partial(walcodec.encode, payload, offsets, types, lsns, segment=1)
    framed = encode()
    decode = partial(walcodec.decode, framed, segment=1)
    decoded = decode()
    assert decoded.status == walcodec.DecodeStatus.OK
    assert np.array_equal(decoded.payload, payload) and np.array_equal(decoded.lsns, lsns)
    encode_s, decode_s = best_times([encode, decode], repeat)
    records = f"{n:,} records of {size} bytes"
    report("walcodec.encode", f"framing {records} in one call, GB/s of payload", "GB/s",
           payload.nbytes / GB / encode_s, anchor=f"target {WAL_TARGET_GBPS:g} GB/s "
           "(a fixed bar, not a library)", anchor_value=WAL_TARGET_GBPS, target_ratio=1.0,
           repeat=repeat)
    report("walcodec.decode", f"informational: validating and splitting the framed "
           f"{records}, GB/s of payload", "GB/s", payload.nbytes / GB / decode_s,
           repeat=repeat)


def main() -> None:
    """Run every kernel benchmark, one JSON line per measurement on stdout."""
    rng = np.random.default_rng(SEED)
    for bench in (bench_crc32c, bench_crc32c_pages, bench_search_numeric,
                  bench_search_varlen, bench_walcodec):
        log(f"bench_kernels: {bench.__name__}")
        bench(rng)


if __name__ == "__main__":
    main()

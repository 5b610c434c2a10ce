"""The server's metrics: :class:`ServerMetrics`, its Prometheus registry, and the
figures ``/stats``, ``coldb stats`` and ``coldb top`` show.

Two kinds of figures live in one :class:`prometheus_client.CollectorRegistry` of
the server's own (never the process-global one):

- read at scrape time by :class:`DatabaseCollector`: the engine's counters from
  ``db.stats()`` (commits, WAL bytes and syncs, checkpoints, recovery, memory, data
  pages), the chunk cache's hits and misses, how much of the data file is in the
  OS page cache (``mincore(2)``, see :func:`resident_bytes`), and the process's
  RSS, disk bytes and major page faults from ``/proc/self``;
- updated by the server as it works: request latency per command
  (:meth:`ServerMetrics.observe_request`), errors by kind, commit latency
  (:meth:`ServerMetrics.observe_commit`).

Rates (commits per second, fsyncs per second, group size) are left to PromQL over
the counters; :meth:`ServerMetrics.snapshot` computes them too, for the tools that
read ``/stats`` instead of a Prometheus. Every metric is described in
``docs/OBSERVABILITY.md``.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from ..storage.pagefile import DATA_NAME

if TYPE_CHECKING:
    from ..database import Database

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
"""Upper bounds (seconds) of the request and commit latency histograms: 50 µs (a
cached GET) to 10 s (a bulk import), about three per decade."""
QUANTILES = (0.5, 0.95, 0.99)
"""The latency percentiles :meth:`ServerMetrics.snapshot` estimates."""
MAX_LABEL_VALUES = 64
"""Distinct commands (or error kinds) a label takes; later ones are counted as
``other``, so a client sending made-up command names cannot grow the registry
without bound."""
OVERFLOW_LABEL = "other"
MINCORE_WINDOW = 1 << 30
"""Bytes of the data file examined per ``mincore`` call (the residency vector of a
window is a quarter of a megabyte with 4 KiB pages)."""


class DatabaseCollector:
    """A Prometheus collector of the engine's and the process's figures, read each
    time the registry is collected (never cached).

    Parameters
    ----------
    database
        The open database whose ``stats()``, chunk cache and data file are read.
    open_connections
        Returns the number of client connections open now (``colibri_connections``);
        None leaves the metric out.
    """

    def __init__(self, database: Database,
                 open_connections: Callable[[], int] | None = None) -> None:
        self.database = database
        self.open_connections = open_connections
        self._first_checkpoint_id = int(database.stats()["checkpoint_id"])

    def collect(self) -> Iterator[Metric]:
        """Every family, read now (see ``docs/OBSERVABILITY.md``)."""
        stats = self.database.stats()
        yield from self._engine(stats)
        yield from self._checkpoints(stats)
        yield from self._caches(stats)
        yield from _process()
        yield from _disk(self.database.path)
        if self.open_connections is not None:
            yield _gauge("colibri_connections", "Client connections open now.",
                         self.open_connections())

    def _engine(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        for key, name, doc in _ENGINE_COUNTERS:
            if key in stats:
                yield _counter(name, doc, stats[key])
        for key, name, doc in _ENGINE_GAUGES:
            if key in stats:
                yield _gauge(name, doc, stats[key])
        page_size = stats["page_size"]
        if "data_pages_used" in stats:
            yield _gauge("colibri_data_used_bytes", "Bytes of the data file allocated "
                         "(below its highest used page).", stats["data_pages_used"] * page_size)
            yield _gauge("colibri_data_free_bytes", "Bytes of free pages inside the used "
                         "part of the data file.", stats["data_pages_free"] * page_size)

    def _checkpoints(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        checkpoint_id = int(stats["checkpoint_id"])
        yield _gauge("colibri_checkpoint_id", "Id of the newest checkpoint (one more per "
                     "checkpoint, kept across restarts).", checkpoint_id)
        yield _counter("colibri_checkpoints", "Checkpoints completed since the server "
                       "started.", checkpoint_id - self._first_checkpoint_id)
        last = stats["last_checkpoint"]
        yield _gauge("colibri_last_checkpoint_failed", "1 if the last automatic "
                     "checkpoint failed (the WAL keeps every commit), else 0.",
                     int("error" in last))
        if "seconds" in last:
            yield _gauge("colibri_last_checkpoint_duration_seconds", "How long the last "
                         "checkpoint of this process took.", last["seconds"])
            yield _gauge("colibri_last_checkpoint_written_bytes", "Bytes of sorted runs "
                         "the last checkpoint wrote.", last["run_bytes"])

    def _caches(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        cache = self.database.chunk_cache
        yield _counter("colibri_chunk_cache_hits", "Point reads of a table chunk found "
                       "parsed in the chunk cache.", cache.hits)
        yield _counter("colibri_chunk_cache_misses", "Point reads of a table chunk not in "
                       "the chunk cache (parsed from the mapped file).", cache.misses)
        yield _gauge("colibri_chunk_cache_bytes", "Arrow bytes the chunk cache holds.",
                     cache.nbytes)
        if "data_pages_used" not in stats:
            return
        resident = resident_bytes(self.database.path / DATA_NAME,
                                  stats["data_pages_used"] * stats["page_size"])
        if resident is not None:
            yield _gauge("colibri_data_resident_bytes", "Bytes of the used data file in "
                         "the OS page cache now (mincore).", resident)


_ENGINE_COUNTERS = (
    ("wal_commits", "colibri_commits", "Transactions committed (logged to the WAL)."),
    ("wal_groups", "colibri_wal_group_commits", "Group commits: WAL writes each carrying "
     "one or more transactions."),
    ("wal_bytes_written", "colibri_wal_written_bytes", "Bytes written to the WAL."),
    ("wal_syncs", "colibri_wal_syncs", "fsyncs (fdatasyncs) of the WAL."),
    ("wal_sync_seconds", "colibri_wal_sync_seconds", "Time spent in WAL fsyncs."),
    ("wal_segments_created", "colibri_wal_segments_created", "WAL segment files "
     "created."),
    ("checkpoints_failed", "colibri_checkpoints_failed", "Checkpoints that failed since "
     "the database was opened (the WAL keeps every commit; the next one retries)."),
    ("checkpoint_seconds_total", "colibri_checkpoint_seconds", "Time spent writing "
     "checkpoints since the database was opened."),
)
"""db.stats() key, metric name (``_total`` is added), help."""
_ENGINE_GAUGES = (
    ("wal_largest_group", "colibri_wal_largest_group_commits", "Most transactions one "
     "group commit has carried."),
    ("published_csn", "colibri_published_csn", "Newest commit sequence number visible "
     "to readers."),
    ("live_snapshots", "colibri_live_snapshots", "Snapshots open now (readers)."),
    ("kv_bytes_in_memory", "colibri_memory_dirty_bytes", "Bytes of changes held in "
     "memory, not yet checkpointed."),
    ("kv_keys_in_memory", "colibri_memory_keys", "Keys changed in memory, not yet "
     "checkpointed."),
    ("kv_runs", "colibri_sorted_runs", "Sorted runs in the data file."),
    ("recovery_seconds", "colibri_recovery_duration_seconds", "Time the WAL replay at "
     "open took."),
    ("recovery_records", "colibri_recovery_records", "WAL records replayed at open."),
    ("recovery_transactions", "colibri_recovery_transactions", "Transactions replayed "
     "at open."),
    ("recovery_bytes", "colibri_recovery_bytes", "WAL bytes replayed at open."),
)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


# -- the process ----------------------------------------------------------------------


def _process() -> Iterator[Metric]:
    """RSS, disk bytes and major faults of this process, each left out where
    ``/proc`` does not have it (not Linux, or ``/proc/self/io`` not readable)."""
    proc = Path("/proc/self")
    try:
        resident_pages = int((proc / "statm").read_text().split()[1])
        yield _gauge("colibri_process_resident_memory_bytes", "Resident set size of the "
                     "server process.", resident_pages * mmap.PAGESIZE)
        # Fields after the command name (which may hold spaces): state is field 3,
        # majflt field 12.
        fields = (proc / "stat").read_text().rpartition(")")[2].split()
        yield _counter("colibri_process_major_page_faults", "Page faults that read from "
                       "disk: touches of mapped pages that were not resident.",
                       int(fields[12 - 3]))
    except OSError:
        return
    try:
        io = dict(line.split(": ") for line in (proc / "io").read_text().splitlines())
    except OSError:
        return
    yield _counter("colibri_process_disk_read_bytes", "Bytes the process caused to be "
                   "read from storage.", int(io["read_bytes"]))
    yield _counter("colibri_process_disk_written_bytes", "Bytes the process caused to be "
                   "written to storage.", int(io["write_bytes"]))


def _disk(path: Path) -> Iterator[Metric]:
    """Free and total bytes of the file system holding the database."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return
    yield _gauge("colibri_disk_free_bytes", "Bytes free for the server on the file "
                 "system holding the database (commits fail with DiskFullError at 0).",
                 usage.free)
    yield _gauge("colibri_disk_total_bytes", "Size of the file system holding the "
                 "database.", usage.total)


# -- page cache residency -------------------------------------------------------------


class _Libc:
    """``mmap``, ``munmap`` and ``mincore`` of the C library, through ctypes."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.mmap = libc.mmap
        self.mmap.restype = ctypes.c_void_p
        self.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long)
        self.munmap = libc.munmap
        self.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        self.mincore = libc.mincore
        self.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


_libc = _Libc() if sys.platform == "linux" else None


def resident_bytes(path: Path, length: int) -> int | None:
    """Bytes of the first ``length`` bytes of file ``path`` that are in the OS page
    cache now, or None where this cannot be measured (not Linux, no such file).

    The file is mapped (read-only, shared, never touched: nothing is read or faulted
    in) and ``mincore(2)`` reports, per OS page, whether it is resident. Linux
    answers for the page cache only when the caller owns the file or may write it
    (otherwise only for pages this process has mapped): the server owns its data
    file.
    """
    if _libc is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        length = min(length, os.fstat(fd).st_size)
        if length <= 0:
            return 0
        address = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address is None or address == ctypes.c_void_p(-1).value:
            return None
        try:
            return _count_resident(address, length)
        finally:
            _libc.munmap(address, length)
    finally:
        os.close(fd)


def _count_resident(address: int, length: int) -> int | None:
    assert _libc is not None
    page = mmap.PAGESIZE
    vector = np.empty(-(-min(length, MINCORE_WINDOW) // page), np.uint8)
    resident_pages = 0
    for start in range(0, length, MINCORE_WINDOW):
        size = min(MINCORE_WINDOW, length - start)
        if _libc.mincore(address + start, size, vector.ctypes.data) != 0:
            return None
        resident_pages += int(np.count_nonzero(vector[:-(-size // page)] & 1))
    return min(resident_pages * page, length)


# -- the server's metrics --------------------------------------------------------------


class ServerMetrics:
    """The metrics of one server over one database, in a registry of their own.

    Parameters
    ----------
    database
        The database the server serves.
    open_connections
        Returns the number of client connections open now (``colibri_connections``).
    clock
        Monotonic seconds, for the interval of :meth:`snapshot` (tests pass a fake).

    Attributes
    ----------
    registry
        The :class:`prometheus_client.CollectorRegistry` ``/metrics`` exports.
    database
        The database.
    """

    def __init__(self, database: Database, open_connections: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(database, open_connections))
        self._request_seconds = Histogram(
            "colibri_request_duration_seconds", "Time from a request's arrival to its "
            "reply, per command.", ["command"], buckets=LATENCY_BUCKETS,
            registry=self.registry)
        self._commit_seconds = Histogram(
            "colibri_commit_duration_seconds", "Time a write took to commit, durably as "
            "the durability mode says, as the server saw it.", buckets=LATENCY_BUCKETS,
            registry=self.registry)
        self._errors = Counter("colibri_errors", "Requests answered with an error, by "
                               "kind.", ["kind"], registry=self.registry)
        self._request_children: dict[str, Histogram] = {}
        self._label_lock = threading.Lock()
        self._commands: set[str] = set()
        self._error_kinds: set[str] = set()
        self._clock = clock
        self._snapshot_lock = threading.Lock()
        self._previous = _Reading.of(self.registry, clock())

    def observe_request(self, command: str, seconds: float, error: str | None) -> None:
        """Count one request of ``command`` (case-insensitive) that took ``seconds``;
        ``error`` is the kind of error it was answered with (for RESP the error
        reply's first word, such as ``ERR`` or ``WRONGTYPE``), None if it succeeded.

        The RESP server takes this method as its observer callback.
        """
        # The labelled child is looked up once per command name: labels() takes a
        # lock and builds a key, a noticeable part of a GET's cost on the loop.
        child = self._request_children.get(command)
        if child is None:
            label = self._bounded(command.lower(), self._commands)
            child = self._request_seconds.labels(command=label)
            if label != OVERFLOW_LABEL:
                self._request_children[command] = child
        child.observe(seconds)
        if error is not None:
            self._errors.labels(kind=self._bounded(error, self._error_kinds)).inc()

    def observe_commit(self, seconds: float) -> None:
        """Count one commit that took ``seconds`` to be acknowledged."""
        self._commit_seconds.observe(seconds)

    def _bounded(self, value: str, seen: set[str]) -> str:
        with self._label_lock:
            if value in seen:
                return value
            if len(seen) < MAX_LABEL_VALUES:
                seen.add(value)
                return value
        return OVERFLOW_LABEL

    def snapshot(self) -> dict[str, Any]:
        """The figures now, with rates and latency percentiles over the interval
        since the previous call (by anyone; the first is measured from the
        construction).

        Returns a dict:

        - ``interval_seconds``: the interval;
        - ``values``: every sample of the registry except histogram buckets, by
          sample name (``colibri_commits_total``), summed over label values;
        - ``rates``: per second over the interval, for every counter in ``values``
          (``rates["colibri_commits_total"]`` is TPS,
          ``rates["colibri_wal_syncs_total"]`` fsyncs per second); None when the
          interval is empty;
        - ``group_size``: transactions per group commit over the interval;
        - ``chunk_cache_hit_ratio``: hits / lookups of the chunk cache over the
          interval;
        - ``page_cache_resident_ratio``: the share of the used data file in the OS
          page cache now, which is the chance that a read of a uniformly chosen page
          is served from memory (see :func:`resident_bytes`);
        - ``commit_latency_seconds`` and ``request_latency_seconds`` (with
          ``by_command``): ``count`` and ``p50``, ``p95``, ``p99`` of the
          observations in the interval.

        Percentiles are estimated from the histogram buckets as Prometheus's
        ``histogram_quantile`` does (:func:`quantile_from_buckets`): the bucket
        holding the rank is found and the value interpolated linearly inside it,
        so an estimate is exact only to the bucket's width
        (:data:`LATENCY_BUCKETS`). A figure with nothing to measure is None.
        """
        with self._snapshot_lock:
            previous = self._previous
            current = _Reading.of(self.registry, self._clock())
            self._previous = current
        return current.compared_with(previous)


class _Reading:
    """The registry's samples at one moment: plain values and histogram buckets."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.values: dict[str, float] = {}
        self.counters: set[str] = set()
        self.buckets: dict[str, dict[str, dict[float, float]]] = {}
        """Histogram name -> label value (``""`` when unlabelled) -> bound -> count."""

    @classmethod
    def of(cls, registry: CollectorRegistry, at: float) -> _Reading:
        reading = cls(at)
        for family in registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                if sample.name.endswith("_bucket"):
                    labels = {k: v for k, v in sample.labels.items() if k != "le"}
                    by_label = reading.buckets.setdefault(family.name, {})
                    counts = by_label.setdefault(",".join(labels.values()), {})
                    counts[float(sample.labels["le"])] = sample.value
                    continue
                reading.values[sample.name] = \
                    reading.values.get(sample.name, 0.0) + sample.value
                if family.type in ("counter", "histogram"):
                    reading.counters.add(sample.name)
        return reading

    def compared_with(self, previous: _Reading) -> dict[str, Any]:
        interval = self.at - previous.at
        deltas = {name: value - previous.values.get(name, 0.0)
                  for name, value in self.values.items() if name in self.counters}
        rates = {name: delta / interval if interval > 0 else None
                 for name, delta in deltas.items()}
        groups = deltas.get("colibri_wal_group_commits_total", 0.0)
        lookups = deltas["colibri_chunk_cache_hits_total"] + \
            deltas["colibri_chunk_cache_misses_total"]
        used = self.values.get("colibri_data_used_bytes", 0.0)
        resident = self.values.get("colibri_data_resident_bytes")
        requests = self._latencies(previous, "colibri_request_duration_seconds")
        commits = self._latencies(previous, "colibri_commit_duration_seconds")
        return {
            "interval_seconds": interval,
            "values": dict(self.values),
            "rates": rates,
            "group_size":
                deltas.get("colibri_commits_total", 0.0) / groups if groups else None,
            "chunk_cache_hit_ratio":
                deltas["colibri_chunk_cache_hits_total"] / lookups if lookups else None,
            "page_cache_resident_ratio":
                resident / used if resident is not None and used else None,
            "commit_latency_seconds": _percentiles(_summed(commits.values())),
            "request_latency_seconds": {
                **_percentiles(_summed(requests.values())),
                "by_command": {command: _percentiles(counts)
                               for command, counts in requests.items()},
            },
        }

    def _latencies(self, previous: _Reading, name: str) -> dict[str, dict[float, float]]:
        """Bucket counts of histogram ``name`` observed since ``previous``, by label
        value (``""`` for an unlabelled histogram)."""
        before = previous.buckets.get(name, {})
        return {label: {bound: count - before.get(label, {}).get(bound, 0.0)
                        for bound, count in counts.items()}
                for label, counts in self.buckets.get(name, {}).items()}


def _summed(bucket_counts: Iterable[Mapping[float, float]]) -> dict[float, float]:
    """Bucket counts of several label values added up (their buckets are the same)."""
    total: dict[float, float] = {}
    for counts in bucket_counts:
        for bound, count in counts.items():
            total[bound] = total.get(bound, 0.0) + count
    return total


def _percentiles(bucket_counts: Mapping[float, float]) -> dict[str, float | None]:
    """``count`` and the :data:`QUANTILES` of one histogram's cumulative bucket
    counts."""
    bounds = sorted(bucket_counts)
    cumulative = [bucket_counts[bound] for bound in bounds]
    figures: dict[str, float | None] = {"count": cumulative[-1] if cumulative else 0.0}
    for q in QUANTILES:
        figures[f"p{round(q * 100)}"] = quantile_from_buckets(bounds, cumulative, q)
    return figures


def quantile_from_buckets(bounds: list[float], cumulative: list[float],
                          q: float) -> float | None:
    """The ``q``-quantile (0 to 1) of observations counted in histogram buckets, as
    Prometheus's ``histogram_quantile`` estimates it.

    Parameters
    ----------
    bounds
        Upper bounds of the buckets, increasing, the last one ``inf``.
    cumulative
        Observations at most each bound (cumulative, as Prometheus buckets are).
    q
        The quantile.

    Returns
    -------
    float or None
        The value below which a share ``q`` of the observations lie, interpolated
        linearly inside the bucket that holds that rank (its lower edge is the
        previous bound, 0 for the first); the highest finite bound if the rank lies
        in the ``inf`` bucket; None if there are no observations.
    """
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    below = 0.0
    lower = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        below, lower = count, bound
    return lower

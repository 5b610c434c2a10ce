"""The key/value store's state: versions in memory over sorted runs on disk.

A :class:`StoreVersion` is an immutable set of sources, newest first: the active
memtable (taking new commits), the *frozen layers* (memtables no longer written to
and bulk commits held as sorted arrays, :class:`~colibri_mm.kv.batch.Batch`), and
the sorted runs of the last checkpoint. A snapshot pins one version together with its
CSN; a checkpoint installs new versions without disturbing pinned ones. A key's value
is taken from the newest source that has an entry for it (a delete marker in a run,
or a delete version in a layer, hides older sources). A bulk commit freezes the
active memtable under its batch and starts a new one, so the layers stay in commit
order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, overload

from .batch import Batch
from .many import ManyFound
from .memtable import Memtable
from .ranges import Source, sorted_source
from .records import DELETE
from .run import Run
from .sorted_entries import Value

Layer = Memtable | Batch


@dataclass(frozen=True)
class StoreVersion:
    """The sources a reader consults, newest first (see the module docstring)."""

    active: Memtable
    frozen: tuple[Layer, ...]
    runs: tuple[Run, ...]
    checkpoint_id: int

    def layers(self) -> tuple[Layer, ...]:
        """Active memtable, then the frozen layers, newest first."""
        return (self.active, *self.frozen)

    def with_batch(self, batch: Batch) -> StoreVersion:
        """This version with ``batch`` on top (the active memtable frozen under it)."""
        below = (self.active, *self.frozen) if len(self.active) else self.frozen
        return StoreVersion(Memtable(), (batch, *below), self.runs, self.checkpoint_id)

    def find_many(self, found: ManyFound, csn: int | None) -> None:
        """Decide the undecided probes of ``found`` as seen at ``csn`` (None: the
        writer's newest view). Sorted layers and runs answer with one kernel call
        each; the search stops once every probe is decided."""
        for layer in self.layers():
            layer.find_many(found, csn)
        for run in self.runs:
            if not found.undecided():
                return
            run.sorted().find_many(found)

    def held_below_active(self, key: bytes) -> bool:
        """Whether a frozen layer or a sorted run has an entry (put or delete) for
        ``key``: a delete in the active memtable must then stay to hide it."""
        return any(layer.latest(key) is not None for layer in self.frozen) or \
            any(run.get(key) is not None for run in self.runs)

    def dirty_bytes(self) -> int:
        """Bytes of keys and values in memory, not yet in a checkpoint."""
        if not self.frozen:
            return self.active.value_bytes
        return sum(layer.value_bytes for layer in self.layers())

    @overload
    def get(self, key: bytes, csn: int | None, view: Literal[False] = False) -> bytes | None: ...

    @overload
    def get(self, key: bytes, csn: int | None, view: bool) -> Value | None: ...

    def get(self, key: bytes, csn: int | None, view: bool = False) -> Value | None:
        """Value of ``key`` at snapshot ``csn`` (None: the writer's newest view); with
        ``view``, a numpy view instead of a copy where the value lies in an array
        (valid while this version is pinned by a snapshot)."""
        for layer in self.layers():
            version = layer.latest(key, view) if csn is None else \
                layer.visible(key, csn, view)
            if version is not None:
                return version[1]
        for run in self.runs:
            entry = run.get(key, view)
            if entry is not None:
                return entry[1] if entry[0] != DELETE else None
        return None

    def range_sources(self, start: bytes | None, end: bytes | None,
                      csn: int | None) -> list[Source]:
        """Every layer's and run's entries in ``[start, end)`` at ``csn``, newest first
        (for :class:`~colibri_mm.kv.ranges.RangeEntries`)."""
        return [layer.range_source(start, end, csn) for layer in self.layers()] + \
            [sorted_source(run.sorted(), start, end) for run in self.runs]

    def scan(self, start: bytes | None, end: bytes | None,
             csn: int | None) -> Iterator[tuple[bytes, bytes]]:
        """Live pairs with ``start <= key < end`` at ``csn``, in key order."""
        sources: list[Iterator[tuple[bytes, bytes | None]]] = [
            layer.versions_in_order(start, end, csn) for layer in self.layers()]
        sources += [_run_items(run, start, end) for run in self.runs]
        yield from newest_by_key(sources)


def newest_by_key(sources: list[Iterator[tuple[bytes, bytes | None]]],
                  ) -> Iterator[tuple[bytes, bytes]]:
    """Merge ordered ``(key, value or None)`` sources given newest first: per key the
    newest source's entry wins, and keys whose winner is a delete are left out."""
    for key, value in newest_by_key_with_deletes(sources):
        if value is not None:
            yield key, value


def newest_by_key_with_deletes(sources: list[Iterator[tuple[bytes, bytes | None]]],
                               ) -> Iterator[tuple[bytes, bytes | None]]:
    """Like :func:`newest_by_key`, but a delete winning is yielded as ``(key, None)``."""
    ranked = [_ranked(source, rank) for rank, source in enumerate(sources)]
    previous = None
    for key, _, value in heapq.merge(*ranked):
        if key != previous:
            previous = key
            yield key, value


def _ranked(source: Iterator[tuple[bytes, bytes | None]],
            rank: int) -> Iterator[tuple[bytes, int, bytes | None]]:
    for key, value in source:
        yield key, rank, value


def _run_items(run: Run, start: bytes | None,
               end: bytes | None) -> Iterator[tuple[bytes, bytes | None]]:
    for key, kind, value in run.items(start, end):
        yield key, (value if kind != DELETE else None)

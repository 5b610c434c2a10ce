"""The key/value store's state: versions in memory over sorted runs on disk.

A :class:`StoreVersion` is an immutable set of sources, newest first: the active
memtable (taking new commits), memtables frozen by a checkpoint in progress, and the
sorted runs of the last checkpoint. A snapshot pins one version together with its
CSN; a checkpoint installs new versions without disturbing pinned ones. A key's value
is taken from the newest source that has an entry for it (a delete marker in a run,
or a delete version in a memtable, hides older sources).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from .memtable import Memtable
from .records import DELETE
from .run import Run


@dataclass(frozen=True)
class StoreVersion:
    """The sources a reader consults, newest first (see the module docstring)."""

    active: Memtable
    frozen: tuple[Memtable, ...]
    runs: tuple[Run, ...]
    checkpoint_id: int

    def memtables(self) -> tuple[Memtable, ...]:
        """Active, then frozen memtables."""
        return (self.active, *self.frozen)

    def get(self, key: bytes, csn: int | None) -> bytes | None:
        """Value of ``key`` at snapshot ``csn`` (None: the writer's newest view)."""
        for memtable in self.memtables():
            version = memtable.latest(key) if csn is None else memtable.visible(key, csn)
            if version is not None:
                return version[1]
        for run in self.runs:
            entry = run.get(key)
            if entry is not None:
                return entry[1] if entry[0] != DELETE else None
        return None

    def scan(self, start: bytes | None, end: bytes | None,
             csn: int | None) -> Iterator[tuple[bytes, bytes]]:
        """Live pairs with ``start <= key < end`` at ``csn``, in key order."""
        sources = [_memtable_items(m, start, end, csn, rank)
                   for rank, m in enumerate(self.memtables())]
        base = len(sources)
        sources += [_run_items(run, start, end, base + i) for i, run in enumerate(self.runs)]
        previous = None
        for key, _, value in heapq.merge(*sources):
            if key == previous:
                continue
            previous = key
            if value is not None:
                yield key, value


def _memtable_items(memtable: Memtable, start: bytes | None, end: bytes | None,
                    csn: int | None, rank: int) -> Iterator[tuple[bytes, int, bytes | None]]:
    for key in memtable.keys_in_order(start, end):
        version = memtable.latest(key) if csn is None else memtable.visible(key, csn)
        if version is not None:
            yield key, rank, version[1]


def _run_items(run: Run, start: bytes | None, end: bytes | None,
               rank: int) -> Iterator[tuple[bytes, int, bytes | None]]:
    for key, kind, value in run.items(start, end):
        yield key, rank, (value if kind != DELETE else None)

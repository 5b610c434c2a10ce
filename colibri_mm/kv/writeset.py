"""A write transaction's uncommitted key/value changes.

Changes are kept in layers, oldest first: dicts of single writes (``put``,
``delete``) and sorted arrays of bulk writes (``put_many`` of at least
``bulk_changes`` pairs, never turned into Python objects). A
read looks at the newest layer first. At commit, :meth:`WriteSet.resolve` gives the
whole set either as one dict (a small transaction: the memtable path) or as one sorted
:class:`~colibri_mm.kernels.merge.Entries` (the bulk path), later writes winning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..kernels.merge import Entries, merge
from .batch import entries_from_lists
from .many import ManyFound
from .ranges import Source, pairs_source, sorted_source
from .records import DELETE, PUT
from .sorted_entries import SortedEntries
from .store import newest_by_key_with_deletes

Changes = dict[bytes, bytes | None]


class WriteSet:
    """Uncommitted changes of one transaction (see the module docstring)."""

    def __init__(self) -> None:
        self._layers: list[Changes | SortedEntries] = []

    def _top(self) -> Changes:
        top = self._layers[-1] if self._layers else None
        if not isinstance(top, dict):
            top = {}
            self._layers.append(top)
        return top

    def put(self, key: bytes, value: bytes | None) -> None:
        """Record ``key -> value`` (None: delete)."""
        self._top()[key] = value

    def update(self, changes: Changes) -> None:
        """Record every pair of ``changes``."""
        self._top().update(changes)

    def add_sorted(self, entries: Entries) -> None:
        """Record bulk changes already sorted with distinct keys."""
        self._layers.append(SortedEntries(entries))

    def get(self, key: bytes) -> tuple[bool, bytes | None]:
        """(written by this transaction?, value or None for a delete)."""
        for layer in reversed(self._layers):
            if isinstance(layer, dict):
                if key in layer:
                    return True, layer[key]
            else:
                hit = layer.get(key)
                if hit is not None:
                    return True, (hit[1] if hit[0] == PUT else None)
        return False, None

    def find_many(self, found: ManyFound) -> None:
        """Decide the undecided probes of ``found`` this transaction wrote or deleted."""
        for layer in reversed(self._layers):
            if isinstance(layer, dict):
                if not layer:
                    continue
                if len(layer) < found.count:
                    # Fewer changes than probes: search the changes as sorted arrays
                    # (one kernel call) rather than each probe in the dict.
                    SortedEntries(entries_from_lists(list(layer), list(layer.values()))
                                  ).find_many(found)
                else:
                    found.take_each(_versions_in(layer))
            else:
                layer.find_many(found)

    def range_sources(self, start: bytes | None, end: bytes | None) -> list[Source]:
        """This transaction's changes in ``[start, end)``, newest layer first."""
        sources = []
        for layer in reversed(self._layers):
            if isinstance(layer, dict):
                sources.append(pairs_source(_changes_in(layer, start, end)))
            else:
                sources.append(sorted_source(layer, start, end))
        return sources

    def items(self, start: bytes | None,
              end: bytes | None) -> Iterator[tuple[bytes, bytes | None]]:
        """This transaction's changes in ``[start, end)`` in key order, newest winning
        (None for deletes)."""
        sources = []
        for layer in reversed(self._layers):
            if isinstance(layer, dict):
                sources.append(iter(_changes_in(layer, start, end)))
            else:
                sources.append((k, v if kind == PUT else None)
                               for k, kind, v in layer.items(start, end))
        return newest_by_key_with_deletes(sources)

    def clear(self) -> None:
        """Forget every change (once :meth:`resolve` has merged them)."""
        self._layers.clear()

    def __bool__(self) -> bool:
        return any(len(layer) for layer in self._layers)

    def resolve(self, bulk_changes: int) -> Changes | Entries:
        """Every change: a dict when there was no bulk write and fewer than
        ``bulk_changes`` changes, else sorted entries."""
        if len(self._layers) <= 1:
            only = self._layers[0] if self._layers else {}
            if isinstance(only, dict) and len(only) < bulk_changes:
                return only
        merged: Entries | None = None
        for layer in self._layers:
            if isinstance(layer, dict):
                if not layer:
                    continue
                entries = entries_from_lists(list(layer), list(layer.values()))
            else:
                entries = layer.entries
            merged = entries if merged is None else merge(
                entries, merged, delete_kind=DELETE, drop_deletes=False)
        assert merged is not None
        return merged


def _versions_in(changes: Changes) -> Callable[[bytes], tuple[int, bytes | None] | None]:
    """A key's ``(0, value)`` in ``changes``, None if they do not touch it."""
    def version(key: bytes) -> tuple[int, bytes | None] | None:
        return (0, changes[key]) if key in changes else None
    return version


def _changes_in(changes: Changes, start: bytes | None,
                end: bytes | None) -> list[tuple[bytes, bytes | None]]:
    """The changes with ``start <= key < end``, in key order."""
    return sorted((k, v) for k, v in changes.items()
                  if (start is None or k >= start) and (end is None or k < end))

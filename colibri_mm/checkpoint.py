"""Checkpoints: turning the versions in memory into sorted runs in the data file.

A checkpoint writes, copy-on-write into free pages (never over a page the current
checkpoint refers to): a new sorted run of the frozen layers (merged with the
newest existing runs when they are not much larger, so there are few runs), then a
new catalog listing the runs, the page CRCs and the free extents. It syncs the data
file, and only then writes the *other* meta slot and syncs it: that write is the
commit point. A crash before it leaves the previous checkpoint intact (its pages
were not touched); a crash after it finds the new one. The WAL segments before the
cut can then be removed.

Extents written by bulk imports (:mod:`.storage.extents`) belong to the runs whose
values name them: each new run lists the extents its chunk descriptors name, and
the extents that the previous checkpoint's runs or the imports since then named but
no run of the new checkpoint names are released by it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .kernels.checksum import crc32c_pages
from .kernels.merge import Entries, merge
from .kv.keys import TABLE_CHUNKS
from .kv.records import DELETE, PUT
from .kv.run import Run, encode_run
from .kv.store import Layer
from .storage.allocator import Allocator
from .storage.catalog import Catalog, ExtentRef, catalog_pages, read_catalog
from .storage.checksums import checksum_of
from .storage.extents import Descriptor, Extent, is_descriptor, named_extents, with_prefix
from .storage.files import FileSystem
from .storage.meta import Meta, write_meta_slot
from .storage.pagefile import PageFile

MERGE_RATIO = 4
"""A new run is merged into the newest old run when ``MERGE_RATIO`` times its size
reaches that run's size (so run sizes grow geometrically and reads visit few runs)."""
MAX_RUNS = 8
"""Never keep more runs than this: merge regardless of sizes."""

_EMPTY = Entries(np.empty(0, np.uint8), np.zeros(1, np.int64), np.empty(0, np.uint8),
                 np.zeros(1, np.int64), np.empty(0, np.uint8))


@dataclass
class CheckpointResult:
    """What a checkpoint wrote."""

    meta: Meta
    runs: tuple[Run, ...]
    entries: int
    run_bytes: int
    merged_runs: int


class Checkpointer:
    """Owns the data file, the allocator and the current catalog of one database."""

    def __init__(self, fs: FileSystem, directory: Path, meta: Meta, meta_slot: int,
                 pages: PageFile | None) -> None:
        self._fs = fs
        self._directory = directory
        self.meta = meta
        self._slot = meta_slot
        self.pages = pages
        self._catalog_extent: tuple[int, int] | None = None
        self.checksum = checksum_of(meta.write_version)
        """The checksum of the checkpoint's format (catalog and run pages)."""
        catalog = Catalog(1, (), ())
        if meta.catalog_root and pages is not None:
            catalog = read_catalog(pages, meta.catalog_root, self.checksum)
            size = len(catalog.encode())
            self._catalog_extent = (meta.catalog_root, catalog_pages(size, pages.page_size))
        self.catalog = catalog
        self.allocator = Allocator(catalog.end, list(catalog.free))

    def runs(self) -> tuple[Run, ...]:
        """The current checkpoint's runs, newest first (checked lazily on first read)."""
        if self.pages is None:
            return ()
        return tuple(Run(self.pages, ref, checksum=self.checksum) for ref in self.catalog.runs)

    def write(self, frozen: tuple[Layer, ...], runs: tuple[Run, ...], lsn: int, csn: int,
              oldest_visible: int, imported: set[Extent]) -> CheckpointResult:
        """Write a checkpoint of ``runs`` plus the ``frozen`` layers (newest first) at
        ``lsn``/``csn`` (see the module docstring); ``imported``: the extents bulk
        imports wrote since the last checkpoint. If it fails, nothing changes: the
        allocator is put back and the previous checkpoint stays current."""
        saved = (self.allocator.end, list(self.allocator.free))
        self._written: list[Extent] = []
        """Extents this checkpoint wrote (its run and catalog)."""
        self._meta_attempted = False
        try:
            return self._write(frozen, runs, lsn, csn, oldest_visible, imported)
        except BaseException:
            self.allocator.end, self.allocator.free = saved
            if self._meta_attempted:
                # The new meta slot may be on disk even though writing or syncing it
                # failed: the pages of its run and catalog stay used (at worst
                # leaked), never handed out again while that checkpoint may be read.
                for first, count in self._written:
                    self.allocator.claim(first, count)
            raise

    def _write(self, frozen: tuple[Layer, ...], runs: tuple[Run, ...], lsn: int, csn: int,
               oldest_visible: int, imported: set[Extent]) -> CheckpointResult:
        pages = self.pages
        assert pages is not None
        new_id = self.meta.checkpoint_id + 1
        entries = frozen[0].newest_entries()
        for older_layer in frozen[1:]:
            entries = merge(entries, older_layer.newest_entries(), delete_kind=DELETE,
                            drop_deletes=False)
        remaining = list(runs)
        merged_away: list[Run] = []
        while remaining and (_bytes(entries) * MERGE_RATIO >= remaining[0].size
                             or len(remaining) >= MAX_RUNS):
            older = remaining.pop(0)
            entries = merge(entries, older.arrays(), delete_kind=DELETE,
                            drop_deletes=not remaining)
            merged_away.append(older)
        if not remaining and np.any(entries.kinds == DELETE):
            entries = merge(entries, _EMPTY, delete_kind=DELETE, drop_deletes=True)
        new_runs: list[Run] = []
        run_bytes = 0
        if entries.kinds.size:
            image = encode_run(entries, pages.page_size)
            count = image.size // pages.page_size
            first = self.allocator.allocate(count, oldest_visible)
            self._written.append((first, count))
            pages.reserve(first + count)
            pages.write(first, image)
            named = tuple(sorted(named_extents(entries, TABLE_CHUNKS, pages.page_size)))
            ref = ExtentRef(first, count, crc32c_pages(image, pages.page_size), named)
            new_runs.append(Run(pages, ref, verified=True))
            run_bytes = image.size
        for old in merged_away:
            self.allocator.release(old.extent.first, old.extent.count, new_id)
        remaining_refs = _unshadowed(entries, remaining, pages.page_size)
        refs = (*(run.extent for run in new_runs), *remaining_refs)
        kept = {e for ref in refs for e in ref.named}
        named_before = {e for ref in self.catalog.runs for e in ref.named} | imported
        for first_page, page_count in sorted(named_before - kept):
            self.allocator.release(first_page, page_count, new_id)
        if self._catalog_extent is not None:
            self.allocator.release(*self._catalog_extent, new_id)
        all_runs = (*new_runs, *remaining)
        catalog, catalog_first, catalog_count = self._write_catalog(refs)
        pages.sync()
        meta = replace(self.meta, checkpoint_id=new_id, checkpoint_lsn=lsn,
                       checkpoint_csn=csn, catalog_root=catalog_first)
        other = 1 - self._slot
        self._meta_attempted = True
        write_meta_slot(self._fs, self._directory, other, meta)
        self._slot = other
        self.meta = meta
        self.catalog = catalog
        self._catalog_extent = (catalog_first, catalog_count)
        for run, ref in zip(remaining, remaining_refs, strict=True):
            run.extent = ref
        return CheckpointResult(meta, all_runs, int(entries.kinds.size), run_bytes,
                                len(merged_away))

    def _write_catalog(self, refs: tuple[ExtentRef, ...]) -> tuple[Catalog, int, int]:
        """Write the catalog of runs ``refs`` at the end of the file (never into a free
        extent, so the free list it records does not depend on where it goes)."""
        pages = self.pages
        assert pages is not None
        draft = Catalog(0, refs, tuple(self.allocator.free))
        count = catalog_pages(len(draft.encode()), pages.page_size)
        first = self.allocator.end
        self.allocator.end += count
        self._written.append((first, count))
        catalog = replace(draft, end=self.allocator.end)
        data = catalog.encode()
        image = np.zeros(count * pages.page_size, np.uint8)
        image[: len(data)] = np.frombuffer(data, np.uint8)
        pages.reserve(first + count)
        pages.write(first, image)
        return catalog, first, count


def _unshadowed(entries: Entries, runs: list[Run], page_size: int) -> list[ExtentRef]:
    """The references of ``runs`` (newest first) without the extents named by
    descriptors that ``entries`` (the new run) shadow: a chunk key the new run
    deletes (a dropped table, a compacted chunk) no longer names its extent, even
    though the older run still holds the descriptor."""
    refs = [run.extent for run in runs]
    if not any(ref.named for ref in refs):
        return refs
    dead: list[set[Extent]] = [set() for _ in refs]
    # Only delete markers shadow a descriptor: chunk numbers are never reused, so a
    # put of a chunk key never meets an older one. So the lookups cost as many as
    # chunks were dropped since the last checkpoint, not as many as there are.
    for key in _keys_with_prefix(entries, TABLE_CHUNKS, DELETE):
        for i, run in enumerate(runs):
            hit = run.get(key, view=True)
            if hit is None:
                continue
            if hit[0] == PUT and is_descriptor(hit[1]):
                dead[i].add(Descriptor.decode(hit[1], page_size).extent)
            break
    return [replace(ref, named=tuple(e for e in ref.named if e not in gone)) if gone else ref
            for ref, gone in zip(refs, dead, strict=True)]


def _keys_with_prefix(entries: Entries, prefix: bytes, kind: int) -> list[bytes]:
    """The keys of ``entries`` of entries of ``kind`` that begin with ``prefix``."""
    offsets, data = entries.key_offsets, entries.key_data
    return [data[offsets[i] : offsets[i + 1]].tobytes()
            for i in np.flatnonzero(with_prefix(entries, prefix, kind)).tolist()]


def _bytes(entries: Entries) -> int:
    return int(entries.key_offsets[-1] + entries.value_offsets[-1]) + 17 * entries.kinds.size

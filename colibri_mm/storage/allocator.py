"""Allocation of extents (runs of contiguous pages) in the data file.

Pages are handed out first-fit from free extents, else from the end of the file.
An extent released by checkpoint ``K`` (the first checkpoint whose catalog no longer
refers to it) may be reused only once no reader can still be looking at a checkpoint
older than ``K``: the caller passes that bound as ``oldest_visible``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CorruptionError


@dataclass(frozen=True)
class FreeExtent:
    """``count`` free pages from ``first``, released by checkpoint ``released_by``."""

    first: int
    count: int
    released_by: int


class Allocator:
    """Free extents and the end of the allocated part of the data file."""

    def __init__(self, end: int, free: list[FreeExtent]) -> None:
        self.end = max(end, 1)
        """First page never allocated (page 0 is reserved)."""
        self.free = sorted(free, key=lambda e: e.first)

    def allocate(self, count: int, oldest_visible: int) -> int:
        """First page of ``count`` contiguous pages no reader can still see."""
        for i, extent in enumerate(self.free):
            if extent.count >= count and extent.released_by <= oldest_visible:
                rest = FreeExtent(extent.first + count, extent.count - count,
                                  extent.released_by)
                self.free[i : i + 1] = [rest] if rest.count else []
                return extent.first
        first = self.end
        self.end += count
        return first

    def release(self, first: int, count: int, released_by: int) -> None:
        """Return an extent that checkpoint ``released_by`` no longer refers to
        (joined with free neighbours, which then wait for the later checkpoint)."""
        self.free.append(FreeExtent(first, count, released_by))
        self.free.sort(key=lambda e: e.first)
        self.free = _coalesced(self.free)

    def protect_until(self, checkpoint: int, file_pages: int) -> None:
        """After a WAL replay: the commits replayed may have written extents (bulk
        imports) into free pages or past ``end`` and dropped them again, and a
        reader process or a held result may still read them. So every free page
        and every page the file holds past ``end`` waits for ``checkpoint`` (the
        next one) like pages it released."""
        free = [FreeExtent(e.first, e.count, max(e.released_by, checkpoint))
                for e in self.free]
        if file_pages > self.end:
            free.append(FreeExtent(self.end, file_pages - self.end, checkpoint))
            self.end = file_pages
        self.free = _coalesced(sorted(free, key=lambda e: e.first))

    def claim(self, first: int, count: int) -> None:
        """Mark pages ``first .. first + count - 1`` used again: an extent a replayed
        commit names, which the checkpoint read at open lists as free or not yet
        allocated. Pages that checkpoint uses for something else are corruption."""
        end = first + count
        old_end = self.end
        inside = max(0, min(end, old_end) - first)
        kept: list[FreeExtent] = []
        covered = 0
        for extent in self.free:
            lo, hi = max(extent.first, first), min(extent.first + extent.count, end)
            if lo >= hi:
                kept.append(extent)
                continue
            covered += hi - lo
            if extent.first < lo:
                kept.append(FreeExtent(extent.first, lo - extent.first, extent.released_by))
            if hi < extent.first + extent.count:
                kept.append(FreeExtent(hi, extent.first + extent.count - hi,
                                       extent.released_by))
        if covered != inside:
            raise CorruptionError(f"a replayed commit names pages {first}..{end - 1}, which "
                                  "the last checkpoint uses for something else")
        if first > old_end:
            kept.append(FreeExtent(old_end, first - old_end, 0))  # never written since
        self.end = max(old_end, end)
        self.free = sorted(kept, key=lambda e: e.first)

    @property
    def free_pages(self) -> int:
        """Pages in free extents."""
        return sum(e.count for e in self.free)


def _coalesced(free: list[FreeExtent]) -> list[FreeExtent]:
    """Sorted free extents with touching neighbours joined (the joined extent is
    released by the later of their checkpoints)."""
    joined: list[FreeExtent] = []
    for extent in free:
        last = joined[-1] if joined else None
        if last is not None and last.first + last.count == extent.first:
            joined[-1] = FreeExtent(last.first, last.count + extent.count,
                                    max(last.released_by, extent.released_by))
        else:
            joined.append(extent)
    return joined

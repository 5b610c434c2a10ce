"""Commit sequence numbers (CSNs): assignment, publication, and the live snapshots.

The writer assigns CSNs in commit order. A CSN is *published* once its commit has
reached the level its durability mode promises (DESIGN.md principle 4); a snapshot
reads at the published CSN of the moment it starts. The registry of live snapshots
gives the *horizon*: the oldest CSN anyone may still read at, below which old
versions can be dropped.
"""

from __future__ import annotations

import itertools
import threading


class CommitClock:
    """Assigned and published CSNs, and the snapshots reading at them."""

    def __init__(self, last_csn: int) -> None:
        self.assigned = last_csn
        """Highest CSN handed to a commit (published or not)."""
        self.published = last_csn
        """Highest CSN readers may see."""
        self._snapshots: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def next_csn(self) -> int:
        """Assign the next CSN (called under the writer lock)."""
        self.assigned += 1
        return self.assigned

    def publish(self, csn: int) -> None:
        """Make commits up to ``csn`` visible to new snapshots."""
        with self._lock:
            if csn > self.published:
                self.published = csn

    def open_snapshot(self) -> tuple[int, int]:
        """Register a snapshot at the published CSN; returns (snapshot id, csn)."""
        with self._lock:
            snapshot_id = next(self._ids)
            self._snapshots[snapshot_id] = self.published
            return snapshot_id, self.published

    def close_snapshot(self, snapshot_id: int) -> None:
        """Forget a snapshot (idempotent)."""
        with self._lock:
            self._snapshots.pop(snapshot_id, None)

    def horizon(self) -> int:
        """Oldest CSN a live snapshot reads at (the published CSN if none is live)."""
        with self._lock:
            return min(self._snapshots.values(), default=self.published)

    @property
    def live_snapshots(self) -> int:
        """Number of snapshots open now."""
        return len(self._snapshots)

"""Commit sequence numbers (CSNs): assignment, publication, and the live snapshots.

The writer assigns CSNs in commit order. A CSN is *published* once its commit has
reached the level its durability mode promises (DESIGN.md principle 4); a snapshot
reads at the published CSN of the moment it starts. The registry of live snapshots
gives the *horizon*: the oldest CSN anyone may still read at, below which old
versions can be dropped.

The clock also holds the current *state* (for the key/value store, the set of
sources to read), so that a snapshot takes its CSN and the state in one step: a
state installed after a CSN was published never pairs with an older CSN.
"""

from __future__ import annotations

import collections
import itertools
import threading
import weakref
from typing import Generic, TypeVar

State = TypeVar("State")


class Lease:
    """Holds a snapshot's state registered until it is garbage collected.

    ``keeper``: set when the database closes while the lease lives, to what keeps
    the pages it reads protected after the close (a reader-table slot)."""

    keeper: object = None


class CommitClock(Generic[State]):
    """Assigned and published CSNs, the current state, and the live snapshots."""

    def __init__(self, last_csn: int, state: State) -> None:
        self.assigned = last_csn
        """Highest CSN handed to a commit (published or not)."""
        self.published = last_csn
        """Highest CSN readers may see."""
        self.state = state
        """What readers read (replaced with :meth:`install`, never mutated)."""
        self._snapshots: dict[int, tuple[int, State]] = {}
        self._leases: dict[int, weakref.ref[Lease]] = {}
        self._released: collections.deque[int] = collections.deque()
        """Ids of leases whose objects died: their finalizers may run inside a
        garbage collection that interrupts this very clock holding its lock, so they
        only queue the id, and every locked method forgets the queued ones first."""
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

    def install(self, state: State) -> None:
        """Make ``state`` what new snapshots read."""
        with self._lock:
            self.state = state

    def _forget_released(self) -> None:
        """Drop the leases whose objects died (called with the lock held)."""
        while self._released:
            lease_id = self._released.popleft()
            self._snapshots.pop(lease_id, None)
            self._leases.pop(lease_id, None)

    def open_snapshot(self) -> tuple[int, int, State]:
        """Register a snapshot at the published CSN; returns (id, csn, state)."""
        with self._lock:
            self._forget_released()
            snapshot_id = next(self._ids)
            self._snapshots[snapshot_id] = (self.published, self.state)
            return snapshot_id, self.published, self.state

    def lease(self, csn: int, state: State) -> Lease:
        """Keep ``state`` at ``csn`` registered like a snapshot for as long as the
        returned object lives (zero-copy data read from it holds the object)."""
        lease = Lease()
        with self._lock:
            self._forget_released()
            lease_id = next(self._ids)
            self._snapshots[lease_id] = (csn, state)
            self._leases[lease_id] = weakref.ref(lease)
        weakref.finalize(lease, self._released.append, lease_id)
        return lease

    def live_leases(self) -> list[tuple[Lease, State]]:
        """The leases alive now, with the states they hold."""
        with self._lock:
            self._forget_released()
            alive = [(ref(), self._snapshots[lease_id][1])
                     for lease_id, ref in self._leases.items()]
        return [(lease, state) for lease, state in alive if lease is not None]

    def close_snapshot(self, snapshot_id: int) -> None:
        """Forget a snapshot (idempotent)."""
        with self._lock:
            self._forget_released()
            self._snapshots.pop(snapshot_id, None)

    def horizon(self) -> int:
        """Oldest CSN a live snapshot reads at (the published CSN if none is live)."""
        with self._lock:
            self._forget_released()
            return min((csn for csn, _ in self._snapshots.values()), default=self.published)

    def live_states(self) -> list[State]:
        """The states pinned by live snapshots."""
        with self._lock:
            self._forget_released()
            return [state for _, state in self._snapshots.values()]

    @property
    def live_snapshots(self) -> int:
        """Number of snapshots (and leases) held now."""
        with self._lock:
            self._forget_released()
            return len(self._snapshots)

"""WATCH: whether a key a connection watches was written since it watched it.

A write is *after* a WATCH, for this purpose, unless the batch that made it had
finished (was durable and acknowledged) before the WATCH: only then is it certain
that every read the client made after WATCH saw it. So a watched key is changed when

1. a batch that wrote it finished after the WATCH (:meth:`WatchRegistry.finished`
   marks the watchers, on the event loop), or
2. a batch that wrote it executed but has not finished yet (its key set waits in the
   registry from execution to finish), or
3. an earlier command of the EXEC's own batch wrote it.

EXEC asks :meth:`WatchRegistry.changed` inside its batch's transaction (under the
engine's write mutex, so every batch that executed before it is known), checking 2
and 3 before 1: a batch finishing meanwhile marks its watchers before it leaves the
registry, so it is seen either way. Batches that executed before the WATCH and
finish after it count as changes: EXEC may fail without need (the client retries,
as with Redis), never succeed wrongly. Writes that do not go through this server
(another program using the same database object) are not seen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .resp_store import TransactionKeys


class WatchState:
    """What one connection watches, and whether a watched key was written."""

    __slots__ = ("changed", "keys")

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.changed = False


@dataclass(frozen=True)
class WrittenKeys:
    """Keys a batch wrote (``everything``: it deleted every key)."""

    keys: set[bytes]
    everything: bool

    def touch(self, watched: set[bytes]) -> bool:
        """Whether these writes changed any of ``watched``."""
        return self.everything or not self.keys.isdisjoint(watched)


class WatchRegistry:
    """The watched keys of every connection, and the writes of unfinished batches."""

    def __init__(self) -> None:
        self._watchers: dict[bytes, set[WatchState]] = {}
        self._unfinished: dict[int, WrittenKeys] = {}
        self._lock = threading.Lock()

    def watch(self, state: WatchState, keys: list[bytes]) -> None:
        """Add ``keys`` to what ``state``'s connection watches (event loop)."""
        for key in keys:
            state.keys.add(key)
            self._watchers.setdefault(key, set()).add(state)

    def unwatch(self, state: WatchState) -> None:
        """Forget everything ``state`` watches and whether it changed (event loop)."""
        for key in state.keys:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(state)
                if not watchers:
                    del self._watchers[key]
        state.keys.clear()
        state.changed = False

    def executed(self, batch_id: int, written: WrittenKeys) -> None:
        """A batch executed its commands (worker thread, under the write mutex). A
        batch run again unit by unit reports each unit's writes."""
        if written.keys or written.everything:
            with self._lock:
                earlier = self._unfinished.get(batch_id)
                if earlier is not None:
                    written = WrittenKeys(earlier.keys | written.keys,
                                          earlier.everything or written.everything)
                self._unfinished[batch_id] = written

    def finished(self, batch_id: int) -> None:
        """A batch is durable (or failed): mark the watchers of what it wrote, then
        forget it (event loop)."""
        with self._lock:
            written = self._unfinished.get(batch_id)
        if written is None:
            return
        if written.everything:
            for watchers in self._watchers.values():
                for state in watchers:
                    state.changed = True
        else:
            for key in written.keys:
                for state in self._watchers.get(key, ()):
                    state.changed = True
        with self._lock:
            del self._unfinished[batch_id]

    def changed(self, state: WatchState, current: TransactionKeys | None = None) -> bool:
        """Whether a key ``state`` watches was written since it was watched.

        ``current``: the keys of the batch being executed (None on the event loop).
        """
        if not state.keys:
            return False
        with self._lock:
            if any(w.touch(state.keys) for w in self._unfinished.values()):
                return True
        if current is not None and (current.wrote_everything or
                                    not current.written.isdisjoint(state.keys)):
            return True
        return state.changed

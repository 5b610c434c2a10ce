"""The commit clock's registry of snapshots and leases."""

import gc
import threading

from colibri_mm.txn.clock import CommitClock


def test_a_lease_freed_by_a_collection_inside_the_clock_does_not_deadlock() -> None:
    """A lease's finalizer can run in a garbage collection that interrupts the clock
    while it holds its lock (any allocation there may collect); it must not wait for
    that lock. The collection is forced inside the locked region here; on failure
    the worker thread would hang, so it is joined with a bound instead."""
    clock: CommitClock[str] = CommitClock(5, "state")
    done = threading.Event()

    def worker() -> None:
        cycle: list[object] = [clock.lease(5, "state")]
        cycle.append(cycle)  # only a collection frees it
        del cycle
        with clock._lock:
            gc.collect()  # the finalizer runs here, under the lock
        assert clock.live_snapshots == 0  # forgotten at the next locked call
        done.set()

    gc.disable()
    try:
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        thread.join(60)
    finally:
        gc.enable()
    assert done.is_set()


def test_leases_count_as_snapshots_until_freed() -> None:
    clock: CommitClock[str] = CommitClock(1, "old")
    lease = clock.lease(1, "old")
    clock.install("new")
    assert clock.live_states() == ["old"]
    assert [state for _, state in clock.live_leases()] == ["old"]
    del lease
    gc.collect()
    assert clock.live_states() == [] and clock.live_leases() == []

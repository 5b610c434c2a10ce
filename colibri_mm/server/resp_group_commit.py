"""Group commit of RESP writes: :class:`GroupCommitter`.

Connections hand it *units*: the run of write commands a connection has ready (its
pipelined requests, up to the first command that is not a data command), or the
commands of one EXEC. Units waiting when a worker thread is free become one *batch*:
one engine write transaction (``db.transaction()``) in which every unit's commands
run in order, committed once. The commit's fsync runs in that worker thread, never
on the event loop; the engine releases its write mutex before waiting for
durability, so a second batch executes while the first one syncs and the WAL groups
their commits. A unit's replies are delivered only after its batch is durable, by
a plain call of its ``deliver`` callback on the event loop (no future per unit).

A command that fails (INCR of a non-integer, SET with a bad option) does not fail
its batch: handlers check everything before writing, so the command writes nothing
and only its reply is an error. EXEC checks its WATCHed keys inside the batch and
then runs its commands like any unit; its reply is one array (or the null array).
If a batch raises (a bug, or the engine failing), it is aborted and each of its
units is run again in a transaction of its own, so only the unit at fault gets
error replies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Error
from .resp_commands import CommandSpec, run_in_transaction
from .resp_protocol import NULL_ARRAY, ErrorReply, Reply
from .resp_store import TransactionKeys
from .resp_strings import DataLimits
from .resp_watch import WatchRegistry, WatchState, WrittenKeys

if TYPE_CHECKING:
    from ..database import Database

log = logging.getLogger(__name__)

BATCHES_IN_FLIGHT = 2
"""Batches executing or waiting for their fsync at once (one worker thread each)."""


@dataclass
class WriteUnit:
    """Commands of one connection that run together in one batch.

    Attributes
    ----------
    commands
        The commands, in order.
    deliver
        Called (event loop) with the replies once they are durable: one per command,
        or for an EXEC one array.
    exec_watch
        For an EXEC: the connection's WATCH state (None: a plain run of commands).
    """

    commands: list[tuple[CommandSpec, list[bytes]]]
    deliver: Callable[[list[Reply]], None]
    exec_watch: WatchState | None


@dataclass
class GroupCommitCounters:
    """What the group committer did so far."""

    batches: int = 0
    units: int = 0
    commands: int = 0
    largest_batch: int = 0
    """Most commands in one batch."""
    failed_batches: int = 0
    """Batches that raised and were run again unit by unit."""


class GroupCommitter:
    """Runs write units in batches, one engine transaction per batch.

    Parameters
    ----------
    db
        The database (open for writing).
    limits
        What data commands check.
    watches
        Told which keys each batch wrote (for WATCH).
    redact_logs
        Log failures by kind only (their text may quote a key).
    on_commit
        Called after each commit with the seconds it took (worker thread).
    batches_in_flight
        Worker threads, so batches that may execute or sync at once.
    """

    def __init__(self, db: Database, limits: DataLimits, watches: WatchRegistry,
                 redact_logs: bool, on_commit: Callable[[float], None] | None = None,
                 batches_in_flight: int = BATCHES_IN_FLIGHT) -> None:
        self._db = db
        self._on_commit = on_commit
        self._redact_logs = redact_logs
        self._limits = limits
        self._watches = watches
        self._batches_in_flight = batches_in_flight
        self._executor = ThreadPoolExecutor(batches_in_flight,
                                            thread_name_prefix="colibri-resp-commit")
        self._waiting: list[WriteUnit] = []
        self._running = 0
        self._pump_scheduled = False
        self._batch_ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        self.counters = GroupCommitCounters()

    def submit(self, commands: list[tuple[CommandSpec, list[bytes]]],
               deliver: Callable[[list[Reply]], None],
               exec_watch: WatchState | None = None) -> None:
        """Queue a unit (event loop); ``deliver`` gets its replies once durable."""
        self._waiting.append(WriteUnit(commands, deliver, exec_watch))
        self._idle.clear()
        if not self._pump_scheduled:
            # After the callbacks of this loop iteration: the requests of every
            # connection that became readable together join the same batch.
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Start a batch of every waiting unit if a worker is free (event loop)."""
        self._pump_scheduled = False
        if not self._waiting or self._running >= self._batches_in_flight:
            return
        units, self._waiting = self._waiting, []
        batch_id = next(self._batch_ids)
        self._running += 1
        loop = asyncio.get_running_loop()
        done = self._executor.submit(self._execute, batch_id, units)
        done.add_done_callback(
            lambda replies: loop.call_soon_threadsafe(self._finish, batch_id, units, replies))

    def _finish(self, batch_id: int, units: list[WriteUnit],
                done: ThreadFuture[list[list[Reply]]]) -> None:
        """Deliver a batch's replies (event loop)."""
        self._running -= 1
        self._watches.finished(batch_id)
        results = done.result()  # _execute turns every failure into error replies
        for unit, replies in zip(units, results, strict=True):
            try:
                unit.deliver(replies)
            except Exception:
                # A connection's bug must not keep the other units' replies.
                log.exception("delivering the replies of a write unit failed")
        c = self.counters
        size = sum(len(unit.commands) for unit in units)
        c.batches += 1
        c.units += len(units)
        c.commands += size
        c.largest_batch = max(c.largest_batch, size)
        self._pump()
        if not self._running and not self._waiting:
            self._idle.set()

    async def close(self) -> None:
        """Wait for every queued and running batch, then stop the worker threads."""
        await self._idle.wait()
        self._executor.shutdown(wait=True)

    # -- in a worker thread --------------------------------------------------------

    def _execute(self, batch_id: int, units: list[WriteUnit]) -> list[list[Reply]]:
        """Run ``units`` in one transaction; if that raises, each in its own."""
        try:
            return self._commit(batch_id, units)
        except Exception as e:
            if len(units) == 1:
                return [self._failed(units[0], e)]
            self.counters.failed_batches += 1
            self._log_failure("a batch of writes failed; running its units one by one", e)
        results = []
        for unit in units:
            try:
                results.extend(self._commit(batch_id, [unit]))
            except Exception as e:
                results.append(self._failed(unit, e))
        return results

    def _commit(self, batch_id: int, units: list[WriteUnit]) -> list[list[Reply]]:
        started = time.perf_counter()
        with self._db.transaction() as tx:
            keys = TransactionKeys(tx.kv)
            results = [self._run_unit(unit, keys) for unit in units]
            # Before the commit releases the write mutex: the next batch's EXEC
            # must know what this one wrote.
            self._watches.executed(batch_id, WrittenKeys(keys.written, keys.wrote_everything))
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started)
        return results

    def _run_unit(self, unit: WriteUnit, keys: TransactionKeys) -> list[Reply]:
        if unit.exec_watch is None:
            return [run_in_transaction(spec, args, keys, self._limits)
                    for spec, args in unit.commands]
        if self._watches.changed(unit.exec_watch, keys):
            return [NULL_ARRAY]
        return [[run_in_transaction(spec, args, keys, self._limits)
                 for spec, args in unit.commands]]

    def _failed(self, unit: WriteUnit, error: Exception) -> list[Reply]:
        """Error replies for a unit whose transaction raised ``error``."""
        self._log_failure("a write failed", error)
        text = f"ERR {error}" if isinstance(error, Error) else \
            f"ERR internal error ({type(error).__name__})"
        replies: list[Reply] = [ErrorReply(text) for _ in unit.commands]
        return replies if unit.exec_watch is None else [ErrorReply(text)]

    def _log_failure(self, message: str, error: Exception) -> None:
        if self._redact_logs:
            log.error("%s: %s", message, type(error).__name__)
        else:
            log.error("%s: %s: %s", message, type(error).__name__, error)

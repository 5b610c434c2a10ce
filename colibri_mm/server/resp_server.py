"""The Redis-protocol server: :class:`RespServer`.

It listens (TCP, or TLS with an ``ssl.SSLContext``), admits clients up to
``max_connections``, closes idle ones, owns what the connections share (the group
committer, the WATCH registry, the counters INFO reports) and stops gracefully:
no new clients, requests already received answered, then every connection closed
and every batch of writes durable. See ``docs/SERVER.md`` for the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .resp_connection import RespConnection
from .resp_group_commit import GroupCommitCounters, GroupCommitter
from .resp_protocol import ErrorReply
from .resp_session import Session
from .resp_settings import RespSettings
from .resp_store import SnapshotKeys
from .resp_strings import DataLimits
from .resp_watch import WatchRegistry

if TYPE_CHECKING:
    from ..database import Database

log = logging.getLogger(__name__)


@dataclass
class ServerCounters:
    """Totals since the server started (INFO's stats section)."""

    connections_received: int = 0
    rejected_connections: int = 0
    commands_processed: int = 0
    error_replies: int = 0
    net_input_bytes: int = 0
    net_output_bytes: int = 0


class RespServer:
    """A Redis-protocol server over ``database``'s key/value store.

    Parameters
    ----------
    database
        An open database; the server does not close it. Opened read-only, the
        server refuses writes as with ``settings.readonly``.
    settings
        Where to listen and what to allow.

    Attributes
    ----------
    port
        The port listened on (the one the system picked when ``settings.port`` is
        0), once :meth:`start` returned.
    """

    def __init__(self, database: Database, settings: RespSettings) -> None:
        self.db = database
        self.settings = settings
        self.readonly = settings.readonly or database.options.readonly
        reason = database.read_only_reason
        self.readonly_reply = ErrorReply(
            "READONLY this server is read-only: writes are refused" +
            ("" if reason is None or settings.readonly else f" ({reason})"))
        """What a write gets (with the database's reason when the format decided)."""
        self.max_key_bytes = min(settings.max_key_bytes, database.options.max_key_size)
        self.limits = DataLimits(
            max_value_bytes=min(settings.max_value_bytes, database.options.max_value_size),
            keys_limit=settings.keys_limit, flushdb_enabled=settings.flushdb_enabled)
        self.watches = WatchRegistry()
        self.counters = ServerCounters()
        self.port = settings.port
        self.started = time.monotonic()
        self._connections: set[RespConnection] = set()
        self._client_ids = itertools.count(1)
        self._listener: asyncio.Server | None = None
        self._committer: GroupCommitter | None = None
        self._idle_closer: asyncio.Task[None] | None = None
        self._all_closed = asyncio.Event()
        self._reads = SnapshotKeys(database)
        self._reads_release_scheduled = False

    async def start(self) -> None:
        """Listen; returns once the port is bound."""
        loop = asyncio.get_running_loop()
        if not self.readonly:
            self._committer = GroupCommitter(self.db, self.limits, self.watches,
                                             self.settings.redact_logs,
                                             self.settings.on_commit)
        self._listener = await loop.create_server(
            lambda: RespConnection(self), self.settings.host, self.settings.port,
            ssl=self.settings.ssl_context, backlog=511, reuse_address=True)
        self.port = self._listener.sockets[0].getsockname()[1]
        self.started = time.monotonic()
        if self.settings.idle_timeout_seconds > 0:
            self._idle_closer = loop.create_task(self._close_idle_connections())
        log.info("RESP server listening on %s:%d%s", self.settings.host, self.port,
                 " (TLS)" if self.settings.ssl_context is not None else "")

    async def stop(self, drain_timeout: float = 10.0) -> bool:
        """Stop gracefully: accept no more clients, answer the requests already
        received (for up to ``drain_timeout`` seconds; then the remaining
        connections are cut), close every connection, wait for every batch of
        writes to be durable. The database stays open.

        Returns
        -------
        bool
            True if every connection finished within ``drain_timeout``.
        """
        clean = True
        if self._listener is not None:
            self._listener.close()
        if self._idle_closer is not None:
            self._idle_closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_closer
        for connection in list(self._connections):
            connection.drain()
        if self._connections:
            self._all_closed.clear()
            try:
                await asyncio.wait_for(self._all_closed.wait(), drain_timeout)
            except TimeoutError:
                log.warning("%d connections still busy after %.1f s: closing them",
                            len(self._connections), drain_timeout)
                for connection in list(self._connections):
                    connection.abort()
                clean = False
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._committer is not None:
            await self._committer.close()
        self._reads.close()
        log.info("RESP server stopped")
        return clean

    @property
    def connection_count(self) -> int:
        """Clients connected now."""
        return len(self._connections)

    @property
    def committer(self) -> GroupCommitter:
        """The group committer (a writable server only)."""
        assert self._committer is not None, "a read-only server has no group committer"
        return self._committer

    def group_commit_counters(self) -> GroupCommitCounters:
        """What the group committer did (zeros on a read-only server)."""
        return self._committer.counters if self._committer is not None \
            else GroupCommitCounters()

    def info(self) -> dict[str, Any]:
        """Counters and state for metrics and ``/stats``: connections, commands,
        errors, bytes in and out, write batches."""
        batches = self.group_commit_counters()
        return {
            "host": self.settings.host, "port": self.port, "readonly": self.readonly,
            "connected_clients": self.connection_count,
            "uptime_seconds": time.monotonic() - self.started,
            **asdict(self.counters),
            "write_batches": batches.batches, "write_batch_units": batches.units,
            "write_batch_commands": batches.commands,
            "largest_write_batch": batches.largest_batch,
            "failed_write_batches": batches.failed_batches,
        }

    def stats_document(self) -> Mapping[str, Any]:
        """What COLDB.STATS returns (``settings.stats_document``, or :meth:`info` and
        ``db.stats()``); called in a worker thread."""
        if self.settings.stats_document is not None:
            return self.settings.stats_document()
        return {"server": self.info(), "database": self.db.stats()}

    def sessions(self) -> list[Session]:
        """The sessions of the connected clients (CLIENT LIST)."""
        return [connection.session for connection in self._connections]

    # -- for connections -------------------------------------------------------------

    def admit(self, connection: RespConnection) -> bool:
        """Register a new connection; False (and counted) when the server is full."""
        if len(self._connections) >= self.settings.max_connections:
            self.counters.rejected_connections += 1
            return False
        self._connections.add(connection)
        self.counters.connections_received += 1
        return True

    def forget(self, connection: RespConnection) -> None:
        """A connection closed."""
        self._connections.discard(connection)
        if not self._connections:
            self._all_closed.set()

    def begin_reads(self) -> SnapshotKeys:
        """The keys a connection's reads on the event loop see during one pass over
        its requests: every connection shares one snapshot while no commit is
        published (opening one per pass is a good part of a GET's cost), so a pass
        sees every write acknowledged before it. The snapshot is released at the next
        loop iteration at the latest, so it never keeps old versions for long."""
        reads = self._reads
        reads.refresh()
        if not self._reads_release_scheduled:
            self._reads_release_scheduled = True
            asyncio.get_running_loop().call_soon(self._release_reads)
        return reads

    def _release_reads(self) -> None:
        self._reads_release_scheduled = False
        self._reads.close()

    def next_client_id(self) -> int:
        """A new client id (CLIENT ID)."""
        return next(self._client_ids)

    async def _close_idle_connections(self) -> None:
        timeout = self.settings.idle_timeout_seconds
        while True:
            await asyncio.sleep(min(1.0, timeout / 2))
            now = time.monotonic()
            for connection in list(self._connections):
                if connection.idle_seconds(now) > timeout:
                    log.debug("closing client %d: idle", connection.session.client_id)
                    connection.close()

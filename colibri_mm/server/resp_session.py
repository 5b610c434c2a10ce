"""The state of one RESP connection: :class:`Session`.

Who the client is (id, address, name, library), what it negotiated (protocol version,
authentication), and its transaction in the making (the MULTI queue and whether a
queued command was refused) and its WATCH state.
"""

from __future__ import annotations

import time

from .resp_commands import CommandSpec
from .resp_watch import WatchState

QueuedCommand = tuple[CommandSpec, list[bytes]]


class Session:
    """Per-connection state of the RESP server.

    Parameters
    ----------
    client_id
        The connection's number (CLIENT ID), unique in the server's life.
    address, local_address
        ``host:port`` of the client and of the server's end.
    authenticated
        Whether commands are allowed before AUTH (True when no password is set).
    """

    def __init__(self, client_id: int, address: str, local_address: str,
                 authenticated: bool) -> None:
        self.client_id = client_id
        self.address = address
        self.local_address = local_address
        self.authenticated = authenticated
        self.protocol = 2
        self.name = b""
        self.library_name = b""
        self.library_version = b""
        self.created = time.monotonic()
        self.last_active = self.created
        self.last_command = "NULL"
        self.multi: list[QueuedCommand] | None = None
        """Commands queued since MULTI (None: not in a transaction)."""
        self.multi_bytes = 0
        self.multi_refused = False
        """A command queued since MULTI was refused: EXEC answers EXECABORT."""
        self.watch = WatchState()

    def begin_multi(self) -> None:
        """Start queueing (MULTI)."""
        self.multi = []
        self.multi_bytes = 0
        self.multi_refused = False

    def end_multi(self) -> list[QueuedCommand]:
        """Stop queueing (EXEC, DISCARD); returns what was queued."""
        queued = self.multi or []
        self.multi = None
        self.multi_bytes = 0
        self.multi_refused = False
        return queued

    def client_line(self, now: float) -> str:
        """This client's line of CLIENT LIST / CLIENT INFO (Redis's fields that apply)."""
        flags = "x" if self.multi is not None else "N"
        return (f"id={self.client_id} addr={self.address} laddr={self.local_address} fd=-1 "
                f"name={self.name.decode('utf-8', 'replace')} "
                f"age={int(now - self.created)} idle={int(now - self.last_active)} "
                f"flags={flags} db=0 sub=0 psub=0 ssub=0 "
                f"multi={-1 if self.multi is None else len(self.multi)} "
                f"watch={len(self.watch.keys)} cmd={self.last_command} user=default "
                f"resp={self.protocol} lib-name={self.library_name.decode('utf-8', 'replace')} "
                f"lib-ver={self.library_version.decode('utf-8', 'replace')}")

"""Settings of the Redis-protocol server: :class:`RespSettings`.

The configuration model builds one from the configuration file; tests build one
directly. Nothing here reads files or the environment.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CommandObserver = Callable[[str, float, str | None], None]
"""Called once per executed command with its lower-case name, the seconds from its
dispatch to its reply being ready, and the kind of its error reply (the reply's
first word, such as ``"ERR"`` or ``"WRONGPASS"``) or None."""


@dataclass(frozen=True)
class RespSettings:
    """How the Redis-protocol server listens and what it allows.

    Attributes
    ----------
    host, port
        Where to listen; ``port=0`` lets the system pick a free port
        (:attr:`RespServer.port` says which).
    max_connections
        Clients beyond this many get ``-ERR max number of clients reached`` and are
        closed.
    max_request_bytes
        Largest request (one command with its arguments, as sent); a client sending
        a bigger one gets ``-ERR Protocol error: ...`` and is disconnected. Also bounds
        the commands queued by one ``MULTI``.
    max_key_bytes, max_value_bytes
        Largest key and value (also capped by the database's own limits).
    idle_timeout_seconds
        Close connections idle this long (0: never).
    password_check
        Checks an AUTH password (None: no AUTH required).
    auth_failure_delay_ms
        After a failed AUTH, the connection waits this long before its reply.
    flushdb_enabled
        Whether FLUSHDB is allowed.
    keys_limit
        KEYS refuses to return more than this many keys (SCAN has no such limit).
    readonly
        Refuse every write with ``-READONLY``.
    ssl_context
        Serve TLS with this context (None: plain TCP).
    redact_logs
        Keep keys and values (and anything else a client sent) out of the logs.
    observer
        Called once per executed command (see :data:`CommandObserver`); the metrics
        module passes one.
    on_commit
        Called (in a worker thread) once per engine commit of a batch of writes, with
        the seconds from the transaction's start to its commit being durable.
    on_shutdown
        Called (on the event loop) by the SHUTDOWN command, after its reply; None:
        SHUTDOWN is refused.
    stats_document
        Builds the JSON document COLDB.STATS returns (in a worker thread); None: the
        server's :meth:`RespServer.info` and ``db.stats()``.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    max_connections: int = 10_000
    max_request_bytes: int = 64 << 20
    max_key_bytes: int = 1024
    max_value_bytes: int = 16 << 20
    idle_timeout_seconds: float = 0.0
    password_check: Callable[[str], bool] | None = None
    auth_failure_delay_ms: float = 100.0
    flushdb_enabled: bool = False
    keys_limit: int = 10_000
    readonly: bool = False
    ssl_context: ssl.SSLContext | None = None
    redact_logs: bool = True
    observer: CommandObserver | None = None
    on_commit: Callable[[float], None] | None = None
    on_shutdown: Callable[[], None] | None = None
    stats_document: Callable[[], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_request_bytes", "max_key_bytes",
                     "max_value_bytes", "keys_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"RespSettings.{name} must be a positive integer; "
                                 f"got {value!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"RespSettings.port must be 0 to 65535; got {self.port!r}")
        if self.idle_timeout_seconds < 0 or self.auth_failure_delay_ms < 0:
            raise ValueError("RespSettings.idle_timeout_seconds and auth_failure_delay_ms "
                             "must be >= 0")

"""One running ``coldb-server``: the database and its three listeners, from start to
a graceful stop.

:class:`Service` opens the database (WAL recovery happens here and is logged as a
report), then starts the Redis-protocol server, the HTTP endpoints and, unless its
port is 0, Arrow Flight, all over that one database in one process. It is ready
(``/readyz`` answers 200) once all of them listen. :meth:`Service.request_stop`
(SIGTERM, SIGINT, or the RESP ``SHUTDOWN`` command) stops it: ``/readyz`` turns 503,
the listeners stop accepting and finish the requests in flight, the database is
checkpointed (so the next start replays nothing) and closed. Every acknowledged
write was durable before its reply, so a stop that runs out of time, or a SIGKILL,
loses none; it only leaves WAL to replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import colibri_mm as cm

from .._version import __version__
from .config import ServerConfig
from .flight import FlightService
from .http import HttpServer
from .metrics import ServerMetrics
from .passwords import verify_password
from .resp_server import RespServer
from .resp_settings import RespSettings

log = logging.getLogger("colibri_mm.server")


class Service:
    """The server of one configuration (see the module docstring).

    Parameters
    ----------
    config
        The validated configuration (command-line overrides applied).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.ready = False
        """True from the moment every listener listens until the stop begins."""
        self.database: cm.Database | None = None
        self.resp: RespServer | None = None
        self.http: HttpServer | None = None
        self.flight: FlightService | None = None
        self.metrics: ServerMetrics | None = None
        self._stop: asyncio.Event | None = None
        self.stop_reason = ""

    # -- start ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database and start every listener (raises if any cannot start;
        whatever had started is stopped again)."""
        self._stop = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            await self._close(timeout=self.config.server.shutdown_timeout_seconds)
            raise

    async def _start(self) -> None:
        config, server = self.config, self.config.server
        started = time.perf_counter()
        options = config.engine_options()
        self.database = db = await asyncio.to_thread(
            cm.connect, config.data_dir, create=not options.readonly,
            **{k: v for k, v in dataclasses.asdict(options).items()})
        log.info("database open", extra={
            "data_dir": str(db.path), "readonly": options.readonly,
            "recovery_records": db.recovery.records,
            "recovery_transactions": db.replayed_transactions,
            "recovery_bytes": db.recovery.bytes,
            "recovery_seconds": round(db.recovery.seconds, 3),
            "recovery_mode": db.recovery.mode,
            "open_seconds": round(time.perf_counter() - started, 3)})
        password = config.security.password_hash
        check = None if password is None else _PasswordCheck(password)
        self.metrics = metrics = ServerMetrics(db, open_connections=self._connections)
        ssl_context = config.ssl_context()
        self.resp = RespServer(db, RespSettings(
            host=server.host, port=server.resp_port, max_connections=server.max_connections,
            max_request_bytes=server.max_request_bytes,
            max_key_bytes=config.limits.max_key_bytes,
            max_value_bytes=config.limits.max_value_bytes,
            idle_timeout_seconds=server.idle_timeout_seconds, password_check=check,
            auth_failure_delay_ms=config.security.auth_failure_delay_ms,
            flushdb_enabled=server.flushdb_enabled, keys_limit=server.keys_limit,
            readonly=options.readonly, ssl_context=ssl_context,
            redact_logs=config.logging.redact, observer=metrics.observe_request,
            on_commit=metrics.observe_commit, on_shutdown=self.request_stop,
            stats_document=self.stats_document))
        await self.resp.start()
        self.http = HttpServer(metrics, lambda: self.ready, server.host, server.http_port,
                               ssl_context=ssl_context)
        await self.http.start()
        if server.flight_port:
            security = config.security
            tls = None if security.tls_cert is None or security.tls_key is None else \
                (security.tls_cert, security.tls_key)
            self.flight = await asyncio.to_thread(
                FlightService, db, server.host, server.flight_port,
                password_check=None if check is None else
                _throttled(check, config.security.auth_failure_delay_ms / 1000),
                readonly=options.readonly, tls=tls, observe_request=metrics.observe_request)
            self.flight.start()
        log.info("listening", extra=self.addresses())
        self.ready = True
        log.info("ready", extra={"start_seconds": round(time.perf_counter() - started, 3)})

    def addresses(self) -> dict[str, Any]:
        """Where each listener listens (``host:port``; Flight None when off)."""
        host = self.config.server.host
        return {"resp": None if self.resp is None else f"{host}:{self.resp.port}",
                "http": None if self.http is None else f"{host}:{self.http.port}",
                "flight": None if self.flight is None else f"{host}:{self.flight.port}"}

    def stats_document(self) -> dict[str, Any]:
        """What ``COLDB.STATS`` returns (``coldb stats``, ``health`` and ``top`` read
        it): the server's state, the metrics snapshot and the database's counters.
        Runs in a worker thread."""
        assert self.resp is not None and self.metrics is not None and \
            self.database is not None
        return {
            "server": {**self.resp.info(), "version": __version__, "pid": os.getpid(),
                       "connections": self.resp.connection_count,
                       "max_connections": self.config.server.max_connections,
                       "ready": self.ready, "addresses": self.addresses()},
            "metrics": self.metrics.snapshot(),
            "database": self.database.stats(),
            "disk": self._disk(),
        }

    def _disk(self) -> dict[str, Any]:
        """Free space where the database lives, and the warning threshold."""
        assert self.database is not None
        usage = shutil.disk_usage(self.database.path)
        return {"free_bytes": usage.free, "total_bytes": usage.total,
                "warning_bytes": self.config.storage.free_space_warning_bytes}

    def _connections(self) -> int:
        return 0 if self.resp is None else self.resp.connection_count

    # -- stop ----------------------------------------------------------------------

    def request_stop(self, reason: str = "shutdown requested") -> None:
        """Ask the service to stop (thread-safe only from the event loop's thread;
        signal handlers and the RESP server call it there)."""
        if self._stop is not None and not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    async def wait_stopped(self) -> bool:
        """Wait for a stop request, then stop; True if everything stopped within
        ``shutdown_timeout_seconds`` (False: the database was still closed, and no
        acknowledged write is lost, but requests in flight may have been cut)."""
        assert self._stop is not None
        await self._stop.wait()
        log.info("stopping", extra={"reason": self.stop_reason})
        started = time.perf_counter()
        clean = await self._close(timeout=self.config.server.shutdown_timeout_seconds)
        log.info("stopped", extra={"clean": clean,
                                   "seconds": round(time.perf_counter() - started, 3)})
        return clean

    async def _close(self, timeout: float) -> bool:
        """Stop the listeners (draining within ``timeout``), checkpoint and close."""
        self.ready = False
        deadline = time.monotonic() + timeout
        clean = True
        if self.resp is not None:
            clean = await self.resp.stop(drain_timeout=timeout) and clean
        if self.flight is not None:
            flight = self.flight
            try:
                await asyncio.wait_for(asyncio.to_thread(flight.shutdown),
                                       max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.error("Flight calls still running at the shutdown timeout")
                clean = False
        db = self.database
        if db is not None:
            try:
                if not db.options.readonly:
                    result = await asyncio.to_thread(db.checkpoint)
                    log.info("checkpoint", extra={
                        k: v for k, v in result.items() if isinstance(v, int | float)})
            except cm.Error as e:
                log.error("the shutdown checkpoint failed (the WAL keeps every "
                          "commit): %s", e)
                clean = False
            await asyncio.to_thread(db.close)
        if self.http is not None:
            await self.http.stop()
        return clean


class _PasswordCheck:
    """Checks passwords against the configured PBKDF2 hash: deliberately slow (about
    0.2 s; callers run it off the event loop), so a password that passed is
    remembered as an HMAC under a key made at start and later compared in constant
    time (Flight clients sending Basic credentials on every call pay the PBKDF2
    once). Failures are never remembered."""

    def __init__(self, encoded: str) -> None:
        self._encoded = encoded
        self._key = secrets.token_bytes(32)
        self._accepted: set[bytes] = set()
        self._lock = threading.Lock()

    def __call__(self, password: str) -> bool:
        mac = hmac.new(self._key, password.encode("utf-8", "surrogateescape"),
                       hashlib.sha256).digest()
        with self._lock:
            known = any(hmac.compare_digest(mac, accepted) for accepted in self._accepted)
        if known:
            return True
        if verify_password(password, self._encoded):
            with self._lock:
                self._accepted.add(mac)
            return True
        return False


def _throttled(check: Callable[[str], bool], delay: float) -> Callable[[str], bool]:
    """``check``, sleeping ``delay`` seconds after each failure: for Flight, which has
    no throttle of its own (the RESP server delays failed AUTH replies itself)."""

    def throttled_check(password: str) -> bool:
        if check(password):
            return True
        time.sleep(delay)
        return False
    return throttled_check

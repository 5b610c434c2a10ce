"""The server's HTTP port: :class:`HttpServer`, an aiohttp application answering
``/healthz``, ``/readyz``, ``/metrics`` and ``/stats``.

- ``GET /healthz``: 200 ``ok`` while the process answers at all;
- ``GET /readyz``: 200 ``ready`` while the ``ready`` callable says the database is
  recovered and accepting work, 503 ``not ready`` otherwise (starting, shutting
  down);
- ``GET /metrics``: the server's registry in the Prometheus text format (version
  0.0.4), or OpenMetrics when the ``Accept`` header asks for it (as Prometheus
  does);
- ``GET /stats``: JSON ``{"metrics": ServerMetrics.snapshot(), "database":
  db.stats()}`` (what ``coldb stats`` and ``coldb top`` read).

Collecting metrics reads ``db.stats()`` and asks the kernel which data file pages
are resident, so ``/metrics`` and ``/stats`` are computed in a worker thread, not on
the event loop the other servers share.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from .metrics import ServerMetrics


class HttpServer:
    """The HTTP endpoints of one server.

    Parameters
    ----------
    metrics
        The server's metrics (their registry is exported, their database's
        ``stats()`` shown).
    ready
        Whether the server is ready for work now (``/readyz``).
    host, port
        Where to listen; port 0 picks a free port (see :attr:`port` after
        :meth:`start`).
    ssl_context
        Serve HTTPS with this context; None for plain HTTP.
    """

    def __init__(self, metrics: ServerMetrics, ready: Callable[[], bool], host: str,
                 port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.metrics = metrics
        self.ready = ready
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/stats", self._stats)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; afterwards :attr:`port` is the port bound."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port,
                              ssl_context=self.ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening and close open connections (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ready")
        return web.Response(status=503, text="not ready")

    async def _metrics(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encode, self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _stats(self, _: web.Request) -> web.Response:
        figures = await asyncio.to_thread(self._figures)
        return web.Response(text=json.dumps(figures, default=str),
                            content_type="application/json")

    def _figures(self) -> dict[str, Any]:
        return {"metrics": self.metrics.snapshot(),
                "database": self.metrics.database.stats()}

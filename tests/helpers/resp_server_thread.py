"""A :class:`RespServer` on a free port of 127.0.0.1, served by an event loop in a
background thread, for tests that talk to it with real clients."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import hiredis

import colibri_mm as cm
from colibri_mm.server.resp_server import RespServer
from colibri_mm.server.resp_settings import RespSettings

T = TypeVar("T")


class ServerThread:
    """The server, its loop and its thread; :meth:`call` runs code on the loop."""

    def __init__(self, db: cm.Database, settings: RespSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = RespServer(db, settings)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.server.start())
            except BaseException as e:
                failure.append(e)
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="resp-test-server", daemon=True)
        self.thread.start()
        started.wait()
        if failure:
            raise failure[0]
        self.port = self.server.port

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` run on the server's loop (its result)."""
        async def wrapped() -> T:
            return function()
        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result()

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """Stop the server (gracefully) and its loop; returns what ``stop`` returned."""
        clean = asyncio.run_coroutine_threadsafe(
            self.server.stop(drain_timeout), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        return clean


@contextmanager
def serve(db: cm.Database, **settings: Any) -> Iterator[ServerThread]:
    """A server over ``db`` with ``settings`` (port 0 unless given) while in the block."""
    settings.setdefault("port", 0)
    running = ServerThread(db, RespSettings(**settings))
    try:
        yield running
    finally:
        running.stop()


class RawClient:
    """A plain socket speaking RESP, for what redis-py will not send or tolerate."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.reader = hiredis.Reader()

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.socket.sendall(data)

    def call(self, *args: bytes) -> Any:
        """Send one command; its reply (an error reply as a ``str`` starting with
        ``-``)."""
        self.send(hiredis.pack_command(args))
        return self.reply()

    def reply(self) -> Any:
        """The next reply (``ConnectionError`` if the server closed first)."""
        while (reply := self.reader.gets()) is False:
            data = self.socket.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.reader.feed(data)
        return f"-{reply}" if isinstance(reply, hiredis.ReplyError) else reply

    def closed_by_server(self) -> bool:
        """Wait until the server closes the connection (True), ignoring what comes."""
        try:
            while self.socket.recv(65536):
                pass
        except ConnectionResetError:  # closed with our bytes still unread
            pass
        return True

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.socket.close()

"""``coldb ping``, ``health``, ``shutdown`` and ``top``, and ``stats`` with
``--server``: a running server, seen and stopped from the shell.

The figures come from the server's ``COLDB.STATS`` command: one JSON document with
the metrics snapshot (rates and latency percentiles over the interval since the
previous snapshot; ``docs/OBSERVABILITY.md``) and the database's counters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import time
from typing import TYPE_CHECKING, Any

import redis

from .exit_codes import OK, CommandError, CommandParser
from .server_client import ServerClient, require_server, server_session
from .server_figures import health_lines, stats_lines, top_table

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register the server commands; ``common`` holds the options every command takes."""
    ping = subparsers.add_parser(
        "ping", parents=[common], help="check that a server answers",
        description="Send PING to the server; print PONG and the round-trip time. "
                    "With --wait, keep trying until it answers (a server starting).")
    ping.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="retry for up to SECONDS while the server cannot be reached")
    ping.set_defaults(run=run_ping)

    health = subparsers.add_parser(
        "health", parents=[common], help="one line per subsystem of a server",
        description="Print one line per subsystem: server, WAL, checkpoint, page "
                    "cache, transactions, connections.")
    health.set_defaults(run=run_health)

    shutdown = subparsers.add_parser(
        "shutdown", parents=[common], help="stop a server gracefully",
        description="Ask the server to stop: it stops accepting, finishes requests in "
                    "flight, checkpoints and exits. Waits until its port is closed.")
    shutdown.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                          help="how long to wait for the server to stop (default 60)")
    shutdown.set_defaults(run=run_shutdown)

    top = subparsers.add_parser(
        "top", parents=[common], help="a live dashboard of a server",
        description="Redraw the server's figures every --interval seconds until Ctrl-C "
                    "(or --count frames).")
    top.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    top.add_argument("--count", type=int, default=0, metavar="N",
                     help="stop after N frames (0: until Ctrl-C)")
    top.set_defaults(run=run_top)


def server_stats(client: ServerClient) -> dict[str, Any]:
    """The server's ``COLDB.STATS`` document."""
    reply = client.command("COLDB.STATS")
    document: dict[str, Any] = json.loads(reply)
    return document


def run_ping(args: argparse.Namespace) -> int:
    """``coldb ping [--wait SECONDS]``."""
    address = require_server(args, "ping")
    deadline = time.monotonic() + args.wait
    while args.wait > 0 and not _accepting(address) and time.monotonic() < deadline:
        time.sleep(0.1)
    with server_session(address) as client:
        started = time.perf_counter()
        client.ping()
        elapsed = time.perf_counter() - started
    print(f"PONG {elapsed * 1000:.2f} ms")
    return OK


def run_health(args: argparse.Namespace) -> int:
    """``coldb health``."""
    with server_session(require_server(args, "health")) as client:
        for line in health_lines(server_stats(client)):
            print(line)
    return OK


def print_server_stats(address: tuple[str, int], as_json: bool) -> None:
    """``coldb stats [--json]`` against a server (local stats are always JSON)."""
    with server_session(address) as client:
        document = server_stats(client)
    if as_json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        for line in stats_lines(document):
            print(line)


def run_shutdown(args: argparse.Namespace) -> int:
    """``coldb shutdown [--timeout N]``."""
    address = require_server(args, "shutdown")
    # The server may close the connection as it begins stopping.
    with server_session(address) as client, contextlib.suppress(redis.ConnectionError):
        client.command("SHUTDOWN")
    deadline = time.monotonic() + args.timeout
    while _accepting(address):
        if time.monotonic() > deadline:
            raise CommandError(f"the server at {address[0]}:{address[1]} still accepts "
                               f"connections after {args.timeout:g} s")
        time.sleep(0.05)
    print("stopped")
    return OK


def _accepting(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def run_top(args: argparse.Namespace) -> int:
    """``coldb top [--interval S] [--count N]``."""
    from rich.console import Console
    from rich.live import Live

    address = require_server(args, "top")
    console = Console()
    with server_session(address) as client:
        server_stats(client)  # starts the first interval
        frames = 0
        with Live(console=console, auto_refresh=False, transient=False) as live:
            try:
                while args.count <= 0 or frames < args.count:
                    time.sleep(args.interval)
                    live.update(top_table(server_stats(client), f"{address[0]}:{address[1]}"),
                                refresh=True)
                    frames += 1
            except KeyboardInterrupt:
                pass
    return OK

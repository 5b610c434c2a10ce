"""Entry point of ``coldb-server``: flags, configuration, daemon mode, signals.

``coldb-server --config colibridb.conf.json`` loads and validates the file
(:mod:`.config`), applies the command-line flags over it (redis-server style: a flag
wins over the file), sets up the logs (:mod:`.logs`), and runs a
:class:`~.service.Service` on an asyncio loop (uvloop when installed) until SIGTERM,
SIGINT or the RESP ``SHUTDOWN`` command stops it. Without ``--config`` the defaults
of ``coldb generate-config`` apply.

``--daemon`` detaches (double fork, new session, standard streams to the log file)
and returns once the server is ready, with exit status 0, or with 1 and the reason
if it failed to start; ``--pidfile`` is written by the running server and removed
when it stops. Exit statuses: 0 after a clean stop, 1 if the server could not start
or its stop ran out of time, 2 for a bad configuration or flag.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError, Error
from ..wal.writer import DURABILITY_MODES
from .config import ServerConfig, apply_overrides, load_config
from .logs import configure_logging

log = logging.getLogger("colibri_mm.server")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``coldb-server`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="coldb-server",
        description="Serve a colibri-mm database over the Redis protocol, HTTP (health, "
                    "Prometheus metrics) and Arrow Flight. Flags override the "
                    "configuration file.")
    parser.add_argument("--version", action="version", version=f"coldb-server {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (JSON; `coldb generate-config` writes one)")
    parser.add_argument("--data-dir", metavar="DIR", help="database directory")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, metavar="N", help="Redis-protocol port")
    parser.add_argument("--http-port", type=int, metavar="N", help="HTTP port")
    parser.add_argument("--flight-port", type=int, metavar="N",
                        help="Arrow Flight port (0 disables Flight)")
    parser.add_argument("--durability", choices=DURABILITY_MODES,
                        help="when a commit is acknowledged (see docs/CONFIG.md)")
    parser.add_argument("--readonly", action="store_true",
                        help="refuse every write (reads only)")
    parser.add_argument("--daemon", action="store_true",
                        help="detach and run in the background once ready")
    parser.add_argument("--pidfile", metavar="FILE", help="write the server's PID here")
    parser.add_argument("--logfile", metavar="FILE",
                        help="write the logs here (overrides logging.file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coldb-server`` with ``argv``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = _configuration(args)
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"coldb-server: {line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.daemon and config.logging.file is None:
        print("coldb-server: --daemon needs a log file (--logfile or logging.file): a "
              "detached server has no terminal", file=sys.stderr)
        return EXIT_CONFIG
    pidfile = None if args.pidfile is None else Path(args.pidfile).absolute()
    report = _daemonize() if args.daemon else None
    configure_logging(config.logging)
    log.info("configuration loaded", extra={
        "config": args.config or "(defaults)", "version": __version__, "pid": os.getpid()})
    try:
        return _serve(config, pidfile, report)
    finally:
        if report is not None:
            report.close()


def _configuration(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config) if args.config else ServerConfig()
    return apply_overrides(
        config, data_dir=args.data_dir, host=args.host, resp_port=args.port,
        http_port=args.http_port, flight_port=args.flight_port,
        durability=args.durability, readonly=True if args.readonly else None,
        log_file=args.logfile)


def _serve(config: ServerConfig, pidfile: Path | None, report: _StartReport | None) -> int:
    from .service import Service  # the listeners' libraries load only for a real start

    try:
        import uvloop
    except ImportError:  # optional: the standard loop works too
        run = asyncio.run
    else:
        run = uvloop.run
    service = Service(config)

    async def serve() -> int:
        try:
            await service.start()
        except (Error, OSError) as e:
            log.error("start failed: %s", e)
            if report is not None:
                report.failed(str(e))
            else:
                print(f"coldb-server: start failed: {e}", file=sys.stderr)
            return EXIT_FAILED
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, service.request_stop, signal.Signals(number).name)
        if pidfile is not None:
            pidfile.write_text(f"{os.getpid()}\n")
        if report is not None:
            report.ready(service.addresses())
        try:
            clean = await service.wait_stopped()
        finally:
            if pidfile is not None:
                pidfile.unlink(missing_ok=True)
        return EXIT_OK if clean else EXIT_FAILED

    return run(serve())


class _StartReport:
    """The daemon's side of the pipe its launching process waits on."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w")

    def ready(self, addresses: dict[str, object]) -> None:
        listening = ", ".join(f"{k} {v}" for k, v in addresses.items() if v)
        self._send(f"ready pid {os.getpid()}: {listening}")

    def failed(self, reason: str) -> None:
        self._send(f"failed: {reason}")

    def _send(self, line: str) -> None:
        if not self._file.closed:
            self._file.write(line + "\n")
            self._file.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _daemonize() -> _StartReport:
    """Detach (double fork, new session, standard streams to /dev/null; the logs go
    to their file). The launching process waits for the server's first line (ready
    or failed), prints it and exits 0 or 1; only the daemon returns from here."""
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            line = pipe.readline().strip()
        # os._exit skips the interpreter's exit, so the streams are flushed here.
        if line.startswith("ready"):
            print(f"coldb-server: {line}", flush=True)
            os._exit(EXIT_OK)
        print(f"coldb-server: {line or 'the daemon exited before it was ready'}",
              file=sys.stderr, flush=True)
        os._exit(EXIT_FAILED)
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(EXIT_OK)
    # No chdir("/"): relative paths of the configuration stay relative to where the
    # server was started, as they are in the foreground.
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(null, stream)
    os.close(null)
    return _StartReport(write_end)


if __name__ == "__main__":
    sys.exit(main())

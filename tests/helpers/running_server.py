"""A real ``coldb-server`` process for tests: free ports, a configuration file, the
logs (JSON lines) read until ``ready``, and a stop that reports the exit status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT = 120.0
"""Seconds a start may take before the test fails (loaded CI machines are slow)."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(directory: Path, *, flight: bool = False, **sections: dict[str, Any]) -> Path:
    """A configuration file in ``directory`` with free ports, the database in
    ``directory / "data"`` and the logs in ``directory / "server.log"``; ``sections``
    add or replace keys of a section (``server={"readonly": True}``)."""
    resp, http, flight_port = free_ports(3)
    config: dict[str, Any] = {
        "data_dir": str(directory / "data"),
        "server": {"resp_port": resp, "http_port": http,
                   "flight_port": flight_port if flight else 0,
                   "shutdown_timeout_seconds": 60},
        "logging": {"file": str(directory / "server.log"), "format": "json"},
    }
    for name, keys in sections.items():
        config.setdefault(name, {}).update(keys)
    path = directory / "colibridb.conf.json"
    path.write_text(json.dumps(config, indent=2))
    return path


class RunningServer:
    """``coldb-server --config CONFIG`` in a child process, ready when constructed."""

    def __init__(self, config: Path, *extra: str) -> None:
        self.config_path = config
        self.config = json.loads(config.read_text())
        self.log_path = Path(self.config["logging"]["file"])
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "colibri_mm.server.main", "--config", str(config), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = self.wait_for("ready")

    @property
    def resp_port(self) -> int:
        return int(self.config["server"]["resp_port"])

    @property
    def http_port(self) -> int:
        return int(self.config["server"]["http_port"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.resp_port}"

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py client of this server that never retries a command by itself
        (a retried INCR could apply twice; a test sees every failure)."""
        options.setdefault("socket_timeout", START_TIMEOUT)
        return redis.Redis(port=self.resp_port, retry=Retry(NoBackoff(), 0), **options)

    def memory_bytes(self, field: str = "VmRSS") -> int:
        """A memory figure of the server process now, from ``/proc/PID/status``:
        ``VmRSS`` (resident set size), ``VmSize`` (virtual size) ..."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for process {self.process.pid}")

    def log_events(self) -> list[dict[str, Any]]:
        """Every log event this process wrote so far."""
        if not self.log_path.exists():
            return []
        with self.log_path.open() as file:
            file.seek(self.log_offset)
            return [json.loads(line) for line in file if line.strip()]

    def wait_for(self, message: str) -> list[dict[str, Any]]:
        """The log events up to the first whose message is ``message``."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            events = self.log_events()
            for i, event in enumerate(events):
                if event["msg"] == message:
                    return events[: i + 1]
            if self.process.poll() is not None:
                raise AssertionError(f"coldb-server exited with {self.process.returncode}: "
                                     f"{self.process.stderr.read() if self.process.stderr else ''}"
                                     f"\n{events}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {message!r} in the logs: {events}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait; the exit status."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        return self.wait()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leave no server behind a failed test (SIGKILL if it still runs)."""
        if self.process.poll() is None:
            self.stop(signal.SIGKILL)

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=START_TIMEOUT)
        finally:
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

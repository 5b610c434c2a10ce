"""Which ``coldb-server`` a command talks to, and a Redis-protocol session with it
whose failures become one-line command errors.

The address comes from ``--server HOST:PORT`` (before or after the command name) or
the ``COLIBRI_SERVER`` environment variable; the password for a server with AUTH
from ``COLIBRI_PASSWORD`` (never a command-line argument, which other users can
read in the process list).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from .exit_codes import CommandError, UsageError

ENV_SERVER = "COLIBRI_SERVER"
ENV_PASSWORD = "COLIBRI_PASSWORD"
TIMEOUT_SECONDS = 30.0
"""How long a command waits for the server to connect or answer."""


def add_server_option(parser: argparse.ArgumentParser, default: Any) -> None:
    """Add ``--server`` to ``parser`` (``default`` as for ``--data-dir``: None on the
    top-level parser, ``argparse.SUPPRESS`` on the commands)."""
    parser.add_argument("--server", metavar="HOST:PORT", default=default,
                        help=f"talk to a running coldb-server (default: ${ENV_SERVER}); "
                             f"its password comes from ${ENV_PASSWORD}")


def server_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """``(host, port)`` of the server named by ``--server`` or ``COLIBRI_SERVER``;
    None when neither is given (the command works on a local directory)."""
    given = getattr(args, "server", None) or os.environ.get(ENV_SERVER)
    if not given:
        return None
    host, colon, port = given.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--server must be HOST:PORT with a port from 1 to 65535; "
                         f"got {given!r}")
    return host.strip("[]"), int(port)


def require_server(args: argparse.Namespace, command: str) -> tuple[str, int]:
    """The server address, which ``command`` cannot do without."""
    address = server_address(args)
    if address is None:
        raise UsageError(f"{command} talks to a running server: pass --server HOST:PORT "
                         f"or set {ENV_SERVER}")
    return address


class ServerClient:
    """The Redis commands ``coldb`` sends, typed (replies are bytes: no decoding)."""

    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection

    def command(self, *args: bytes | str | int) -> Any:
        """Send one command; its reply as redis-py parses it."""
        return self._redis.execute_command(*args)  # type: ignore[no-untyped-call]

    def ping(self) -> None:
        self.command("PING")

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.command("GET", key)
        return value

    def set(self, key: bytes, value: bytes) -> None:
        self.command("SET", key, value)

    def delete(self, key: bytes) -> int:
        return int(self.command("DEL", key))

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        return list(self.command("MGET", *keys))

    def scan(self, cursor: bytes, match: bytes | None, count: int) -> tuple[bytes, list[bytes]]:
        """One SCAN call: the next cursor (``b"0"`` at the end) and keys."""
        args: list[bytes | str | int] = ["SCAN", cursor]
        if match is not None:
            args += ["MATCH", match]
        next_cursor, keys = self.command(*args, "COUNT", count)
        return bytes(next_cursor) if not isinstance(next_cursor, int) else \
            str(next_cursor).encode(), list(keys)


@contextmanager
def server_session(address: tuple[str, int],
                   timeout: float = TIMEOUT_SECONDS) -> Iterator[ServerClient]:
    """A connection to the server at ``address``, waiting up to ``timeout`` seconds
    for an answer; errors inside the block (cannot connect, AUTH refused, an error
    reply) end the command with their reason."""
    host, port = address
    client = redis.Redis(host=host, port=port, password=os.environ.get(ENV_PASSWORD) or None,
                         socket_timeout=timeout,
                         socket_connect_timeout=TIMEOUT_SECONDS, retry_on_timeout=False)
    where = f"coldb-server at {host}:{port}"
    try:
        yield ServerClient(client)
    except redis.AuthenticationError as e:
        raise CommandError(f"{where} refused the password (${ENV_PASSWORD}): {e}") from None
    except redis.exceptions.NoPermissionError as e:
        raise CommandError(f"{where}: {e}") from None
    except redis.ConnectionError as e:
        if "NOAUTH" in str(e) or "Authentication required" in str(e):
            raise CommandError(f"{where} needs a password: set ${ENV_PASSWORD}") from None
        raise CommandError(f"cannot reach {where}: {e}") from None
    except redis.TimeoutError:
        raise CommandError(f"{where} did not answer within {timeout:g} s") from None
    except redis.ResponseError as e:
        raise CommandError(f"{where} answered: {e}") from None
    finally:
        client.close()

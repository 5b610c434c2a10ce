"""``coldb put``, ``get``, ``delete`` and ``scan``: key/value access to a local
database, or to a running server with ``--server HOST:PORT``.

Locally, reads (``get``, ``scan``) open the database read-only, so they work while
another process writes it; writes (``put``, ``delete``) take the write lock for one
commit. Against a server they are the Redis commands SET, GET, DEL and SCAN (with
MGET for the values), so a remote scan is not one snapshot: keys changed while it
runs may show either value, as with Redis.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .byte_text import HELP as RENDERING_HELP
from .byte_text import argument_bytes, render
from .database_dir import open_database
from .exit_codes import NOT_FOUND, OK, CommandError, CommandParser, UsageError
from .server_client import ServerClient, server_address, server_session

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register the key/value commands; ``common`` holds the options every command takes."""
    put = subparsers.add_parser(
        "put", parents=[common], help="set a key to a value",
        description="Set KEY to VALUE (UTF-8 encoded), or to the bytes of --value-file, "
                    "in one commit.")
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE", nargs="?")
    put.add_argument("--value-file", metavar="PATH",
                     help="take the value's bytes from PATH ('-' for standard input) "
                          "instead of VALUE")
    put.set_defaults(run=run_put)

    get = subparsers.add_parser(
        "get", parents=[common], help="print the value of a key",
        description="Print the value of KEY. A missing key prints a message on standard "
                    "error and exits 1. " + RENDERING_HELP)
    get.add_argument("key", metavar="KEY")
    get.add_argument("--raw", action="store_true",
                     help="write the value's exact bytes, unescaped and without a newline")
    get.set_defaults(run=run_get)

    delete = subparsers.add_parser(
        "delete", parents=[common], help="delete a key",
        description="Delete KEY. Prints the number of keys deleted, 1 or 0 (as Redis DEL "
                    "does); the exit status is 0 if the key existed and 1 if it did not.")
    delete.add_argument("key", metavar="KEY")
    delete.set_defaults(run=run_delete)

    scan = subparsers.add_parser(
        "scan", parents=[common], help="print keys and values in key order",
        description="Print KEY<TAB>VALUE lines in byte order of the keys, from one "
                    "snapshot. --start (inclusive), --end (exclusive) and --prefix narrow "
                    "the range; they combine. " + RENDERING_HELP)
    scan.add_argument("--prefix", metavar="P", help="only keys starting with P")
    scan.add_argument("--start", metavar="S", help="only keys >= S")
    scan.add_argument("--end", metavar="E", help="only keys < E")
    scan.add_argument("--limit", metavar="N", type=_count, help="at most N pairs")
    scan.set_defaults(run=run_scan)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value}")
    return value


def _optional_bytes(text: str | None) -> bytes | None:
    return None if text is None else argument_bytes(text)


def run_put(args: argparse.Namespace) -> int:
    """``coldb put KEY (VALUE | --value-file PATH)``."""
    if (args.value is None) == (args.value_file is None):
        raise UsageError("put takes either VALUE or --value-file PATH")
    key = argument_bytes(args.key)
    value = argument_bytes(args.value) if args.value is not None else \
        _read_value_file(args.value_file)
    address = server_address(args)
    if address is not None:
        with server_session(address) as client:
            client.set(key, value)
        return OK
    with open_database(args, readonly=False) as db:
        db.kv.put(key, value)
    return OK


def _read_value_file(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as e:
        raise CommandError(f"cannot read --value-file {path}: {e.strerror or e}") from None


def run_get(args: argparse.Namespace) -> int:
    """``coldb get KEY [--raw]``."""
    key = argument_bytes(args.key)
    address = server_address(args)
    if address is not None:
        with server_session(address) as client:
            value = client.get(key)
    else:
        with open_database(args, readonly=True) as db:
            value = db.kv.get(key)
    if value is None:
        raise CommandError(f"key not found: {render(key)}", NOT_FOUND)
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
    else:
        print(render(value))
    return OK


def run_delete(args: argparse.Namespace) -> int:
    """``coldb delete KEY``."""
    key = argument_bytes(args.key)
    address = server_address(args)
    if address is not None:
        with server_session(address) as client:
            existed = bool(client.delete(key))
    else:
        with open_database(args, readonly=False) as db, db.transaction() as tx:
            # Checked first so that deleting a missing key commits nothing.
            existed = tx.kv.get(key) is not None
            if existed:
                tx.kv.delete(key)
    print(1 if existed else 0)
    return OK if existed else NOT_FOUND


def run_scan(args: argparse.Namespace) -> int:
    """``coldb scan [--prefix P] [--start S] [--end E] [--limit N]``."""
    start, end, prefix = map(_optional_bytes, (args.start, args.end, args.prefix))
    address = server_address(args)
    if address is not None:
        with server_session(address) as client:
            pairs = _remote_pairs(client, start, end, prefix)
            for key, value in itertools.islice(pairs, args.limit):
                print(f"{render(key)}\t{render(value)}")
        return OK
    with open_database(args, readonly=True) as db, db.snapshot() as snap:
        pairs = snap.kv.scan(start, end, prefix)
        for key, value in itertools.islice(pairs, args.limit):
            print(f"{render(key)}\t{render(value)}")
    return OK


SCAN_COUNT = 1000
"""Keys asked for per SCAN call of a remote scan."""


def _remote_pairs(client: ServerClient, start: bytes | None, end: bytes | None,
                  prefix: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    """Pairs in key order from SCAN (``prefix`` as a MATCH pattern) and MGET; a key
    deleted between the two is skipped. The server's SCAN returns keys in order, so
    the range is cut here without sorting."""
    match = None if prefix is None else glob_escape(prefix) + b"*"
    cursor = b"0"
    while True:
        cursor, keys = client.scan(cursor, match, SCAN_COUNT)
        keys = [k for k in keys if (start is None or k >= start) and (end is None or k < end)]
        if keys:
            for key, value in zip(keys, client.mget(keys), strict=True):
                if value is not None:
                    yield key, value
        if cursor == b"0":
            return


def glob_escape(text: bytes) -> bytes:
    """``text`` with the Redis glob characters (``*?[]\\``) escaped."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", text)

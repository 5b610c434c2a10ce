"""Entry point of ``coldb``: argument parsing, dispatch to the commands, and turning
every failure into an exit status and a one-line reason.

The commands work on a local database directory (``--data-dir`` or
``COLIBRI_DATA_DIR``), and those in :data:`SERVER_COMMANDS` on a running server
instead with ``--server HOST:PORT`` (:mod:`.server_client`; ``ping``, ``health``,
``shutdown`` and ``top`` are in :mod:`.server_commands`); they are defined in
:mod:`.kv_commands` (keys and values),
:mod:`.table_commands` (tables, import and export; ``--where`` is parsed by
:mod:`colibri_mm.tables.where`), :mod:`.admin_commands`, :mod:`.backup_commands` (backup, restore,
verify-backup), :mod:`.migrate_commands` (format migration) and
:mod:`.config_commands` (the server's configuration file), and the exit statuses in
:mod:`.exit_codes`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from .._version import __version__
from ..errors import ConfigError, Error
from . import (
    admin_commands,
    backup_commands,
    config_commands,
    kv_commands,
    migrate_commands,
    server_commands,
    table_commands,
)
from .database_dir import add_data_dir_option
from .exit_codes import (
    BROKEN_PIPE,
    DATABASE_ERROR,
    EPILOG,
    INTERNAL_ERROR,
    INTERRUPTED,
    USAGE,
    CommandError,
    CommandParser,
    UsageError,
)
from .server_client import add_server_option

DESCRIPTION = """\
Operate colibri-mm databases in a local directory, named by --data-dir (before
or after the command) or by $COLIBRI_DATA_DIR. Keys and values given as
arguments are UTF-8 encoded; put --value-file takes any bytes. get and scan show
keys and values binary-safely, as `coldb scan --help` explains. Tables move in
and out with import and export (Parquet, Arrow IPC, CSV); a missing table, like a
missing key, exits 1.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``coldb`` argument parser, with every command."""
    parser = CommandParser(
        prog="coldb",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coldb {__version__}")
    add_data_dir_option(parser, default=None)
    add_server_option(parser, default=None)
    common = CommandParser(add_help=False)
    add_data_dir_option(common, default=argparse.SUPPRESS)
    add_server_option(common, default=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                       parser_class=CommandParser)
    admin_commands.add_init_command(subparsers, common)
    kv_commands.add_commands(subparsers, common)
    table_commands.add_commands(subparsers, common)
    admin_commands.add_commands(subparsers, common)
    backup_commands.add_commands(subparsers, common)
    migrate_commands.add_commands(subparsers, common)
    config_commands.add_commands(subparsers, common)
    server_commands.add_commands(subparsers, common)
    for command in subparsers.choices.values():
        command.set_defaults(parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coldb`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed
        return exit_.code if isinstance(exit_.code, int) else USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    return run(args)


SERVER_COMMANDS = frozenset({"put", "get", "delete", "scan", "stats", "backup", "ping",
                             "health", "shutdown", "top"})
"""The commands that can talk to a server (``--server`` or ``COLIBRI_SERVER``)."""


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; map every failure to its exit status."""
    try:
        if getattr(args, "server", None) and args.command not in SERVER_COMMANDS:
            raise UsageError(f"{args.command} works on a local database directory "
                             "(--data-dir), not through --server")
        status: int = args.run(args)
    except CommandError as e:
        if e.status == USAGE:
            args.parser.print_usage(sys.stderr)
        return _fail(str(e), e.status)
    except ConfigError as e:
        args.parser.print_usage(sys.stderr)
        return _fail(str(e), USAGE)
    except Error as e:
        return _fail(str(e) or type(e).__name__, DATABASE_ERROR)
    except BrokenPipeError:
        # Whoever read standard output went away; stop writing to it, quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as e:
        where = f"{e.filename}: " if e.filename is not None else ""
        return _fail(f"{where}{e.strerror or e}", DATABASE_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", INTERRUPTED)
    except Exception as e:
        traceback.print_exc()
        return _fail(f"internal error (a bug in colibri-mm, please report it): "
                     f"{type(e).__name__}: {e}", INTERNAL_ERROR)
    return status


def _fail(reason: str, status: int) -> int:
    """Print ``coldb: error: reason`` as one line on standard error; return ``status``."""
    print("coldb: error: " + " ".join(reason.splitlines()), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

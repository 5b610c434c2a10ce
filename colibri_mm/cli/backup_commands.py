"""``coldb backup``, ``restore`` and ``verify-backup``: online backups of a local
database or of a running server's, and getting them back.

The work is done by :mod:`colibri_mm.backup`; these commands choose where it runs
(here, or in the server with ``COLDB.BACKUP``) and print what it reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backup import TAR_SUFFIXES, restore, verify_backup
from ..errors import CorruptionError, LockedError
from .database_dir import data_dir, open_database
from .exit_codes import CHECK_FAILED, OK, CommandError, CommandParser
from .progress_option import add_progress_option, progress_wanted
from .server_client import server_address, server_session

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]

SERVER_BACKUP_TIMEOUT = 3600.0
"""Seconds ``coldb --server ... backup`` waits for the server's answer."""


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register ``backup``, ``restore`` and ``verify-backup``."""
    backup = subparsers.add_parser(
        "backup", parents=[common], help="copy the database while it keeps committing",
        description="Take a consistent online backup: every commit written when the "
                    "backup starts, while writers go on committing (they are held for a "
                    "few milliseconds only). --output ending in .tar.gz or .tgz writes a "
                    "compressed tarball, anything else a new directory; a manifest lists "
                    "every file with its CRC-32C. Locally the database must not be open "
                    "for writing by another process: back up a running server with "
                    "`coldb --server HOST:PORT backup --output PATH`, where PATH is a "
                    "path on the server's host, written by the server process.")
    backup.add_argument("--output", metavar="PATH", required=True,
                        help="new directory, or FILE.tar.gz")
    backup.add_argument("--json", action="store_true", help="print the manifest summary "
                        "as JSON")
    add_progress_option(backup)
    backup.set_defaults(run=run_backup)

    restore_ = subparsers.add_parser(
        "restore", parents=[common], help="restore a backup into a directory",
        description="Check every file of the backup against its manifest, copy it beside "
                    "--data-dir, sync it and rename it into place, then open the database "
                    "once (recovery replays the WAL up to the backup's LSN) and print what "
                    "it holds. A non-empty --data-dir is replaced only with --force.")
    restore_.add_argument("--from", dest="source", metavar="PATH", required=True,
                          help="the backup: a directory or a .tar.gz file")
    restore_.add_argument("--force", action="store_true",
                          help="replace a non-empty --data-dir")
    restore_.add_argument("--json", action="store_true", help="print the report as JSON")
    add_progress_option(restore_)
    restore_.set_defaults(run=run_restore)

    verify = subparsers.add_parser(
        "verify-backup", parents=[common], help="check a backup without restoring it",
        description="Check the manifest and every file's size and CRC-32C, then restore "
                    "a temporary copy, open it read-only and run the full check on it. "
                    "Exits 0 when the backup is sound and 1 naming the damaged file.")
    verify.add_argument("source", metavar="PATH", help="a backup directory or .tar.gz file")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    add_progress_option(verify)
    verify.set_defaults(run=run_verify_backup)


def run_backup(args: argparse.Namespace) -> int:
    """``coldb backup --output PATH``."""
    address = server_address(args)
    if address is not None:
        with server_session(address, timeout=SERVER_BACKUP_TIMEOUT) as client:
            summary: dict[str, Any] = json.loads(client.command("COLDB.BACKUP", args.output))
    else:
        try:
            db = open_database(args, readonly=False)
        except LockedError as e:
            raise CommandError(f"{e}. To back up a database a server has open, ask the "
                               "server: coldb --server HOST:PORT backup --output PATH") from None
        with db:
            summary = db.backup(args.output, progress=progress_wanted(args)).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kind = "tarball" if args.output.endswith(TAR_SUFFIXES) else "directory"
        print(f"backup written to {args.output} ({kind}): {summary['files']} files, "
              f"{summary['bytes']} bytes, up to LSN {summary['lsn']} (CSN {summary['csn']})")
    return OK


def run_restore(args: argparse.Namespace) -> int:
    """``coldb restore --from PATH --data-dir DIR [--force]``."""
    report = restore(Path(args.source), data_dir(args), force=args.force,
                     progress=progress_wanted(args))
    result = {"data_dir": str(report.data_dir), "lsn": report.lsn,
              "csn": report.manifest.csn, "keys": report.keys, "tables": report.table_rows,
              "seconds": report.seconds}
    if args.json:
        print(json.dumps(result, indent=2))
        return OK
    print(f"restored {args.source} into {report.data_dir}: up to LSN {report.lsn} "
          f"(CSN {report.manifest.csn})")
    print(f"keys: {report.keys}")
    for name, rows in report.table_rows.items():
        print(f"table {name}: {rows} rows")
    return OK


def run_verify_backup(args: argparse.Namespace) -> int:
    """``coldb verify-backup PATH``."""
    try:
        manifest, report = verify_backup(Path(args.source), progress=progress_wanted(args))
    except CorruptionError as e:
        raise CommandError(f"backup damaged: {e}", CHECK_FAILED) from None
    if args.json:
        print(json.dumps({"manifest": manifest.summary(), "check": report.to_dict()},
                         indent=2))
    if not report.ok:
        raise CommandError("backup damaged: " + "; ".join(report.all_problems),
                           CHECK_FAILED)
    if not args.json:
        print(f"backup verified: {args.source}: {len(manifest.files)} files, "
              f"{manifest.total_bytes} bytes, up to LSN {manifest.lsn}, check passed")
    return OK

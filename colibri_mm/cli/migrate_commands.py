"""``coldb migrate``: moving a local database to another on-disk format, and back.

The work is :mod:`colibri_mm.migrate`'s; this module parses the options, draws the
progress bar and prints the report.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..migrate import FORMATS, migrate, rollback
from ..storage.meta import WRITE_VERSION, format_version_text
from .database_dir import data_dir
from .exit_codes import OK, CommandError, CommandParser
from .progress_option import add_progress_option, progress_wanted

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register ``migrate``; ``common`` holds the options every command takes."""
    command = subparsers.add_parser(
        "migrate", parents=[common], help="migrate a database to the current format",
        description="Migrate the database to another on-disk format (format 0.9, the "
                    "pre-release format, to 1.0). Every checksum of the old format is "
                    "checked first (damage stops it, naming the file and offset, with "
                    "nothing changed); the new files are written beside the old ones "
                    "(DIR/.migrate-1.0), synced, and switched in atomically; the old files "
                    "stay in DIR/.rollback-0.9 until --rollback puts them back. A crash at "
                    "any point leaves the old or the new database; running migrate again "
                    "finishes the job. No process may have the database open for writing.")
    command.add_argument("--to", metavar="VERSION", default=format_version_text(WRITE_VERSION),
                         choices=sorted(FORMATS),
                         help="target format (default: %(default)s)")
    command.add_argument("--verify", action="store_true",
                         help="before switching, open the new files, check every page and "
                              "index, and compare every key and row with the old database")
    command.add_argument("--dry-run", action="store_true",
                         help="check everything and say what would be written; write nothing")
    command.add_argument("--rollback", action="store_true",
                         help="put back the files the last migration replaced (refused if "
                              "the database was written since)")
    add_progress_option(command)
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.set_defaults(run=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    """``coldb migrate [--to V] [--verify] [--dry-run] [--rollback] [--json]``."""
    directory = data_dir(args)
    if not directory.is_dir():
        raise CommandError(f"{directory}: no such database directory")
    if args.rollback:
        if args.verify or args.dry_run:
            raise CommandError("--rollback takes neither --verify nor --dry-run")
        record = rollback(directory)
        if args.json:
            print(json.dumps(record, indent=2))
        else:
            print(f"{directory}: rolled back to format {record['from']} (the files of "
                  f"format {record['to']} were removed)")
        return OK
    report = migrate(directory, to=args.to, dry_run=args.dry_run, verify=args.verify,
                     progress=progress_wanted(args))
    if args.json:
        print(json.dumps(asdict(report), indent=2, default=str))
    else:
        print("\n".join(report.summary()))
    return OK

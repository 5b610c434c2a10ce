"""``coldb init``, ``stats``, ``check`` and ``recover``: creating a local database and
looking after it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import colibri_mm as cm

from ..check import check_database
from ..errors import CorruptionError
from ..storage.meta import META_NAME
from ..wal.reader import RECOVERY_MODES
from .database_dir import data_dir, open_database
from .exit_codes import CHECK_FAILED, NOT_FOUND, OK, CommandError, CommandParser
from .server_client import server_address
from .server_commands import print_server_stats

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[CommandParser]


def add_init_command(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register ``init``; ``common`` holds the options every command takes."""
    init = subparsers.add_parser(
        "init", parents=[common], help="create a database",
        description="Create a database in DIR, which must not exist yet or be an empty "
                    "directory.")
    init.add_argument("directory", metavar="DIR", nargs="?",
                      help="where to create it (default: --data-dir or $COLIBRI_DATA_DIR)")
    init.add_argument("--page-size", metavar="N", type=int,
                      help="page size in bytes: a power of two from 4096 to 1048576 "
                           "(default 65536); fixed for the life of the database")
    init.set_defaults(run=run_init)


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register ``stats``, ``check``, ``recover`` and ``checkpoint``."""
    stats = subparsers.add_parser(
        "stats", parents=[common], help="print counters and state",
        description="Open the database read-only (so it works while another process "
                    "writes it) and print its stats as a JSON object. The recovery_* "
                    "fields describe the WAL replay of this open. With --server, print "
                    "the server's figures (rates and latency percentiles over the interval "
                    "since the previous snapshot), all of them with --json.")
    stats.add_argument("--json", action="store_true",
                       help="with --server: print the whole document as JSON")
    stats.set_defaults(run=run_stats)

    checkpoint = subparsers.add_parser(
        "checkpoint", parents=[common], help="write a checkpoint now",
        description="Open the database for writing, write the changes since the last "
                    "checkpoint into the data file, delete the WAL segments before it, "
                    "and print what was written as JSON.")
    checkpoint.set_defaults(run=run_checkpoint)

    compact = subparsers.add_parser(
        "compact", parents=[common], help="rewrite tables' sparse chunks, then checkpoint",
        description="Open the database for writing, rewrite the chunks of each TABLE (every "
                    "table if none is named) that hold deleted rows or are under half "
                    "full into full chunks, one transaction per table, then checkpoint "
                    "(which merges the store's sorted runs). Prints what was done as JSON.")
    compact.add_argument("tables", nargs="*", metavar="TABLE")
    compact.set_defaults(run=run_compact)

    check = subparsers.add_parser(
        "check", parents=[common], help="verify every checksum and structural invariant",
        description="Open the database read-only, replay the WAL after the checkpoint "
                    "with absolute recovery and verify every page of the checkpoint: the "
                    "meta file, every data page and every WAL record must pass their "
                    "checksums and structural checks. Then check the invariants: extents "
                    "inside the data file and not overlapping, free space apart from what "
                    "is in use, runs in key order, commits in CSN order, and per table its "
                    "row counts and every index entry against the rows (one line per "
                    "table). Exits 0 when clean and 1 (with the file and offset, or the "
                    "problems) when damaged. A WAL tail torn by a crash also fails "
                    "until `coldb recover` repairs it; run check while no process writes "
                    "the database, or a commit in progress may look torn.")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=run_check)

    recover = subparsers.add_parser(
        "recover", parents=[common], help="replay the WAL and repair its tail",
        description="Open the database for writing with the given recovery mode, which "
                    "replays the WAL and cuts off a torn or damaged tail, and print what "
                    "was replayed and dropped. point_in_time (default): stop at the first "
                    "damaged record and drop what follows. absolute: drop nothing; fail "
                    "on any damage. skip_corrupted: salvage by skipping damaged regions.")
    recover.add_argument("--mode", choices=RECOVERY_MODES, default="point_in_time",
                         help="recovery mode (default: point_in_time)")
    recover.add_argument("--json", action="store_true", help="print the report as JSON")
    recover.set_defaults(run=run_recover)


def run_init(args: argparse.Namespace) -> int:
    """``coldb init [DIR] [--page-size N]``."""
    directory = Path(args.directory) if args.directory else data_dir(args)
    if directory.exists():
        if not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory")
        if (directory / META_NAME).exists():
            raise CommandError(f"{directory} already holds a colibri-mm database")
        if any(directory.iterdir()):
            raise CommandError(f"{directory} is not empty; init creates a database only in "
                               "a new or empty directory")
    options: dict[str, Any] = {}
    if args.page_size is not None:
        options["page_size"] = args.page_size
    with cm.connect(directory, create=True, **options) as db:
        page_size = db.stats()["page_size"]
    print(f"created colibri-mm database {directory} (page size {page_size} bytes)")
    return OK


def run_stats(args: argparse.Namespace) -> int:
    """``coldb stats [--json]``."""
    address = server_address(args)
    if address is not None:
        print_server_stats(address, args.json)
        return OK
    with open_database(args, readonly=True) as db:
        stats = db.stats()
    print(json.dumps(stats, indent=2))
    return OK


def run_check(args: argparse.Namespace) -> int:
    """``coldb check [--json]``."""
    try:
        db = open_database(args, readonly=True, recovery="absolute")
        with db:
            report = _recovery_report(db)
            checked = check_database(db)
    except CorruptionError as e:
        raise CommandError(f"check failed: {e}", CHECK_FAILED) from None
    report.update(checked.checksums)
    report.update(data_pages=checked.data_pages, free_pages=checked.free_pages,
                  extents_in_use=checked.extents_in_use,
                  tables=[asdict(table) for table in checked.tables],
                  problems=checked.all_problems)
    if checked.ok:
        _print_report(report, "check passed", args.json)
    elif args.json:
        print(json.dumps(report, indent=2))
    if not args.json:
        for table in checked.tables:
            print(f"table {table.name}: {table.rows} rows, {table.chunks} chunks "
                  f"({table.extents} extents), {table.index_entries} index entries, "
                  f"{len(table.problems) or 'no'} problems")
    if not checked.ok:
        raise CommandError("check failed: " + "; ".join(checked.all_problems), CHECK_FAILED)
    return OK


def run_checkpoint(args: argparse.Namespace) -> int:
    """``coldb checkpoint``."""
    with open_database(args, readonly=False) as db:
        print(json.dumps(db.checkpoint(), indent=2))
    return OK


def run_compact(args: argparse.Namespace) -> int:
    """``coldb compact [TABLE ...]``."""
    with open_database(args, readonly=False) as db:
        names = args.tables or db.tables()
        missing = sorted(set(names) - set(db.tables()))
        if missing:
            raise CommandError(f"no table named {missing[0]!r} (`coldb tables` lists them)",
                               NOT_FOUND)
        report = {"tables": {name: db.table(name).compact() for name in names},
                  "checkpoint": db.checkpoint()}
    print(json.dumps(report, indent=2))
    return OK


def run_recover(args: argparse.Namespace) -> int:
    """``coldb recover [--mode MODE] [--json]``."""
    with open_database(args, readonly=False, recovery=args.mode) as db:
        report = _recovery_report(db)
    _print_report(report, "recovered", args.json)
    return OK


def _recovery_report(db: cm.Database) -> dict[str, Any]:
    stats = db.stats()
    return {
        "path": stats["path"],
        "format": stats["format_version"],
        "mode": db.recovery.mode,
        "segments": db.recovery.segments,
        "records": stats["recovery_records"],
        "transactions": stats["recovery_transactions"],
        "bytes": stats["recovery_bytes"],
        "seconds": stats["recovery_seconds"],
        "dropped": stats["recovery_dropped"],
    }


def _print_report(report: dict[str, Any], verdict: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"{verdict}: {report['path']} (recovery mode {report['mode']})")
    for name in ("format", "segments", "records", "transactions", "bytes"):
        print(f"{name}: {report[name]}")
    print(f"seconds: {report['seconds']:.6f}")
    for line in report["dropped"] or ["nothing"]:
        print(f"dropped: {line}")

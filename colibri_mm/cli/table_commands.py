"""``coldb tables``, ``describe``, ``import`` and ``export``: tables of a local database,
and moving them in and out as Parquet, Arrow IPC or CSV files.

``import`` takes the write lock for one transaction (all or nothing: a failed import
leaves the database as it was); the others open the database read-only, so they work
while another process writes it. ``export`` writes ``PATH.partial`` and renames it
into place, so a failed export leaves no file behind. A table that does not exist
ends a command with status 1, like a missing key.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc

import colibri_mm as cm

from ..arrow.importer import MODES, ImportResult
from ..arrow.parquet import replacing
from ..errors import TableExistsError, TableNotFoundError
from ..tables import where
from .database_dir import open_database
from .exit_codes import NOT_FOUND, OK, CommandError, CommandParser, UsageError
from .progress_option import add_progress_option, progress_wanted

if TYPE_CHECKING:
    from ..tables.table import Table

    _Subparsers = argparse._SubParsersAction[CommandParser]

FORMATS = ("parquet", "arrow", "csv")
FORMAT_NAMES = {"parquet": "Parquet", "arrow": "Arrow IPC", "csv": "CSV"}
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".parq": "parquet",
              ".arrow": "arrow", ".arrows": "arrow", ".feather": "arrow", ".ipc": "arrow",
              ".csv": "csv"}
"""File name extensions and the format they mean (for ``--format auto``)."""
CSV_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
"""Extensions after ``.csv`` that mean a compressed CSV file, and the codec."""
ARROW_FILE_MAGIC = b"ARROW1"
"""The first bytes of an Arrow IPC file (a stream starts with a message instead)."""
FEATHER_V1_MAGIC = b"FEA1"
EXPORT_BATCH_ROWS = 65536

WHERE_HELP = (
    "only rows for which EXPR holds. EXPR is a Python-like expression: comparisons "
    "(== != < <= > >=) of columns with literals or columns, `x == None` / `x is None` "
    "for nulls, `x in (1, 2)`, and/or/not, parentheses; col('a name') names a column "
    "that is not an identifier; strings compared with date or timestamp columns are "
    "converted ('2024-01-31'). Example: \"score >= 0.5 and name != None\"")


def add_commands(subparsers: _Subparsers, common: CommandParser) -> None:
    """Register the table commands; ``common`` holds the options every command takes."""
    tables = subparsers.add_parser(
        "tables", parents=[common], help="list the tables",
        description="Print the name of every table, one per line, sorted.")
    tables.set_defaults(run=run_tables)

    describe = subparsers.add_parser(
        "describe", parents=[common], help="show a table's schema and storage",
        description="Show table NAME: its columns (name, type, nullable), primary key, "
                    "rows, row groups, stored bytes and indexes. A missing table exits 1.")
    describe.add_argument("name", metavar="NAME")
    describe.add_argument("--json", action="store_true", help="print it as a JSON object")
    describe.set_defaults(run=run_describe)

    import_ = subparsers.add_parser(
        "import", parents=[common], help="import a Parquet, Arrow IPC or CSV file",
        description="Import PATH into table NAME in one transaction, streaming: all of "
                    "it or, if anything fails (a duplicate primary key, a value that "
                    "does not fit the schema, a damaged file), nothing. PATH is a "
                    "Parquet file or a directory of them (hive-style key=value "
                    "directories become columns), an Arrow IPC file or stream "
                    "(.arrow, .arrows, .feather, .ipc) or a CSV file with a header line "
                    "(.csv, optionally .gz, .bz2, .zst or .lz4 compressed). CSV column "
                    "types are inferred, or taken from the table when appending or "
                    "upserting; an empty field is null, except in text columns. Prints "
                    "one line: rows, megabytes of Arrow data, seconds and rows per "
                    "second.")
    import_.add_argument("path", metavar="PATH")
    import_.add_argument("--table", metavar="NAME", required=True,
                         help="the table to import into")
    import_.add_argument("--mode", choices=MODES, default="create",
                         help="create: a new table with the file's schema (default); "
                              "append: insert into an existing table; upsert: insert, "
                              "replacing rows with the same primary key; replace: "
                              "replace the table's rows and schema (creating it if need be)")
    import_.add_argument("--primary-key", metavar="COL[,COL...]", type=_column_list,
                         help="primary key columns of a new table (default: none, a "
                              "keyless table; replace keeps the old key)")
    import_.add_argument("--columns", metavar="A,B", type=_column_list,
                         help="import only these columns of the file")
    import_.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                         help="the file's format (default auto: from PATH's extension; "
                              "a directory is Parquet)")
    add_progress_option(import_)
    import_.set_defaults(run=run_import)

    export = subparsers.add_parser(
        "export", parents=[common], help="export a table to a Parquet, Arrow IPC or CSV file",
        description="Write the rows of table NAME, from one snapshot, to the file PATH "
                    "(replacing it). The file is written as PATH.partial and renamed into "
                    "place, so a failed export leaves no file. Arrow is written as an "
                    "Arrow IPC file (Feather version 2); CSV with a header line, "
                    "compressed when PATH ends in .gz, .bz2, .zst or .lz4.")
    export.add_argument("name", metavar="NAME")
    export.add_argument("path", metavar="PATH")
    export.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                        help="the file's format (default auto: from PATH's extension)")
    export.add_argument("--columns", metavar="A,B", type=_column_list,
                        help="only these columns, in this order")
    export.add_argument("--where", metavar="EXPR", help=WHERE_HELP)
    export.set_defaults(run=run_export)


def _column_list(text: str) -> tuple[str, ...]:
    """``a,b`` as column names: none empty, none twice."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"column {repeated[0]!r} is named twice")
    return names


# -- tables and describe --------------------------------------------------------------


def run_tables(args: argparse.Namespace) -> int:
    """``coldb tables``."""
    with open_database(args, readonly=True) as db:
        names = db.tables()
    for name in names:
        print(name)
    return OK


def run_describe(args: argparse.Namespace) -> int:
    """``coldb describe NAME [--json]``."""
    with open_database(args, readonly=True) as db:
        description = _table(db, args.name).describe()
    if args.json:
        print(json.dumps(_describe_json(description), indent=2))
    else:
        for line in _describe_lines(description):
            print(line)
    return OK


def _table(db: cm.Database, name: str) -> Table:
    try:
        return db.table(name)
    except TableNotFoundError:
        raise CommandError(f"no table named {name!r} (`coldb tables` lists them)",
                           NOT_FOUND) from None


def _describe_json(description: dict[str, Any]) -> dict[str, Any]:
    schema: pa.Schema = description["schema"]
    key = description["primary_key"]
    return {
        "name": description["name"],
        "columns": [{"name": field.name, "type": str(field.type), "nullable": field.nullable}
                    for field in schema],
        "primary_key": None if key is None else list(key),
        "rows": description["rows"],
        "row_groups": description["row_groups"],
        "tail_rows": description["tail_rows"],
        "stored_bytes": description["stored_bytes"],
        "indexes": [{"columns": list(index["columns"]), "kind": index["kind"]}
                    for index in description["indexes"]],
    }


def _describe_lines(description: dict[str, Any]) -> list[str]:
    schema: pa.Schema = description["schema"]
    key = description["primary_key"]
    lines = [
        f"table:       {description['name']}",
        f"primary key: {', '.join(key) if key else 'none (a keyless table)'}",
        f"rows:        {description['rows']:,}",
        f"row groups:  {description['row_groups']:,} (and {description['tail_rows']:,} "
        "rows not yet in a row group)",
        f"stored:      {human_bytes(description['stored_bytes'])} "
        f"({description['stored_bytes']:,} bytes)",
        "columns:",
    ]
    rows = [("column", "type", "nullable")] + [
        (field.name, str(field.type), "yes" if field.nullable else "no") for field in schema]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines += [f"  {name:<{widths[0]}}  {type_:<{widths[1]}}  {nullable}"
              for name, type_, nullable in rows]
    indexes = description["indexes"]
    lines.append("indexes:" + ("" if indexes else " none"))
    lines += [f"  {', '.join(index['columns'])} ({index['kind']})" for index in indexes]
    return lines


def human_bytes(count: int) -> str:
    """``count`` bytes in decimal units (kB, MB, GB, TB: powers of 1000)."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


# -- import ----------------------------------------------------------------------------


class _SourceError(Exception):
    """Reading the file being imported failed (raised inside the import, which then
    aborts its transaction)."""


def run_import(args: argparse.Namespace) -> int:
    """``coldb import PATH --table NAME [--mode M] [--primary-key K] [--columns C]
    [--format F] [--progress]``."""
    path = Path(args.path)
    if not path.exists():
        raise CommandError(f"{path}: no such file or directory")
    file_format = _import_format(path, args.format)
    if path.is_dir() and file_format != "parquet":
        raise CommandError(f"{path} is a directory; only Parquet data is read from a "
                           "directory")
    progress = progress_wanted(args)
    key = args.primary_key
    primary_key = key[0] if key is not None and len(key) == 1 else key
    columns = None if args.columns is None else list(args.columns)
    name = args.table
    with open_database(args, readonly=False) as db:
        try:
            if file_format == "parquet":
                result = db.import_parquet(name, path, columns=columns,
                                           primary_key=primary_key, mode=args.mode,
                                           progress=progress)
            else:
                with ExitStack() as resources:
                    if file_format == "csv":
                        types = _existing_schema(db, name) if args.mode in (
                            "append", "upsert") else None
                        reader = _csv_reader(path, columns, types, resources)
                    else:
                        reader = _arrow_reader(path, columns, resources)
                    result = db.import_arrow(name, reader, primary_key=primary_key,
                                             mode=args.mode, progress=progress)
        except _SourceError as e:
            raise CommandError(f"cannot read {path} as {FORMAT_NAMES[file_format]}: "
                               f"{_one_line(e)}") from None
        except TableNotFoundError:
            raise CommandError(f"cannot {args.mode} into table {name!r}: there is no such "
                               "table (--mode create or replace creates it)",
                               NOT_FOUND) from None
        except TableExistsError as e:
            raise CommandError(f"{e} (--mode append, upsert or replace imports into it)") \
                from None
    print(_import_summary(result))
    return OK


def _import_format(path: Path, given: str) -> str:
    if given != "auto":
        return given
    if path.is_dir():
        return "parquet"
    found = format_of(path)
    if found is None:
        raise UsageError(f"cannot tell the format of {path} from its extension; pass "
                         f"--format {'|'.join(FORMATS)}")
    return found


def format_of(path: Path) -> str | None:
    """The format a file name's extension means (None: not one of ours)."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in CSV_COMPRESSION and suffixes[-2] == ".csv":
        return "csv"
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def _csv_compression(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return CSV_COMPRESSION.get(suffix)


def _existing_schema(db: cm.Database, name: str) -> pa.Schema | None:
    """The schema of table ``name``, if it exists (CSV columns are read as its types)."""
    try:
        return db.table(name).schema
    except TableNotFoundError:
        return None


def _csv_reader(path: Path, columns: list[str] | None, types: pa.Schema | None,
                resources: ExitStack) -> pa.RecordBatchReader:
    """A streaming reader of the CSV file ``path`` (``columns``: only these;
    ``types``: read the columns it names as these types)."""
    options = pa_csv.ConvertOptions(
        include_columns=columns or [],
        column_types={} if types is None else {field.name: field.type for field in types})
    try:
        stream = resources.enter_context(
            pa.input_stream(str(path), compression=_csv_compression(path)))
        reader = pa_csv.open_csv(stream, convert_options=options)
    except pa.ArrowKeyError as e:  # a column of --columns is not in the file
        raise _SourceError(_missing_csv_column(path, columns or []) or _one_line(e)) \
            from None
    except (pa.ArrowException, OSError) as e:
        raise _SourceError(_one_line(e)) from None
    return _guarded(reader.schema, reader)


def _missing_csv_column(path: Path, columns: list[str]) -> str | None:
    """Which of ``columns`` the CSV file's header lacks, said in a sentence."""
    with pa.input_stream(str(path), compression=_csv_compression(path)) as stream:
        names = pa_csv.open_csv(stream).schema.names
    missing = [c for c in columns if c not in names]
    if not missing:
        return None
    return f"it has no column {missing[0]!r} (it has {', '.join(names)})"


def _arrow_reader(path: Path, columns: list[str] | None,
                  resources: ExitStack) -> pa.RecordBatchReader:
    """A reader of the Arrow IPC file or stream ``path`` (``columns``: only these)."""
    with open(path, "rb") as file:
        magic = file.read(len(ARROW_FILE_MAGIC))
    if magic.startswith(FEATHER_V1_MAGIC):
        raise _SourceError("it is a Feather version 1 file, which coldb does not read "
                           "(pyarrow.feather.write_feather writes version 2)")
    try:
        source = resources.enter_context(pa.memory_map(str(path)))
        if magic == ARROW_FILE_MAGIC:
            file_reader = ipc.open_file(source)
            schema = file_reader.schema
            batches: Iterator[pa.RecordBatch] = (
                file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
        else:
            stream_reader = ipc.open_stream(source)
            schema = stream_reader.schema
            batches = iter(stream_reader)
    except (pa.ArrowException, OSError) as e:
        raise _SourceError(f"neither an Arrow IPC file nor stream ({_one_line(e)})") \
            from None
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise _SourceError(f"it has no column {missing[0]!r} (it has "
                               f"{', '.join(schema.names)})")
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
        batches = (batch.select(columns) for batch in batches)
    return _guarded(schema, batches)


def _guarded(schema: pa.Schema, batches: Iterator[pa.RecordBatch] | pa.RecordBatchReader
             ) -> pa.RecordBatchReader:
    """``batches`` as a reader whose read errors are :class:`_SourceError` (so they are
    told apart from errors of the import itself)."""
    def read() -> Iterator[pa.RecordBatch]:
        iterator = iter(batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as e:
                raise _SourceError(_one_line(e)) from None
            yield batch

    return pa.RecordBatchReader.from_batches(schema, read())


def _import_summary(result: ImportResult) -> str:
    rate = result.rows / result.seconds if result.seconds > 0 else 0.0
    return (f"imported {_rows(result.rows)} into table {result.table!r} "
            f"({result.bytes / 1e6:,.2f} MB) in {result.seconds:.2f} s "
            f"({rate:,.0f} rows/s)")


# -- export ----------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    """``coldb export NAME PATH [--format F] [--columns C] [--where EXPR]``."""
    path = Path(args.path)
    file_format = _export_format(path, args.format)
    if args.where is not None:
        try:  # syntax first, before the database is opened
            where.parse(args.where)
        except where.WhereSyntaxError as e:
            raise UsageError(f"--where: {e}") from None
    if path.is_dir():
        raise CommandError(f"{path} is a directory (export writes one file)")
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such directory")
    columns = None if args.columns is None else list(args.columns)
    with open_database(args, readonly=True) as db:
        table = _table(db, args.name)
        filter_ = None
        if args.where is not None:
            try:
                filter_ = where.parse(args.where, table.schema)
            except where.WhereError as e:
                raise CommandError(f"--where: {e}") from None
        if file_format == "parquet":
            rows = table.to_parquet(path, columns, filter_)
        else:
            rows = _write_file(table, path, file_format, columns, filter_)
    print(f"exported {_rows(rows)} of table {args.name!r} to {path} "
          f"({FORMAT_NAMES[file_format]})")
    return OK


def _export_format(path: Path, given: str) -> str:
    if given != "auto":
        return given
    found = format_of(path)
    if found is None:
        raise UsageError(f"cannot tell the format to write from the extension of {path}; "
                         f"pass --format {'|'.join(FORMATS)}")
    return found


def _write_file(table: Table, path: Path, file_format: str, columns: Sequence[str] | None,
                filter_: Any) -> int:
    """Write the rows to ``path`` as an Arrow IPC file or CSV, through
    ``path.partial`` renamed into place; returns how many rows."""
    reader = table.to_arrow_reader(EXPORT_BATCH_ROWS, columns, filter_)
    compression = _csv_compression(path) if file_format == "csv" else None
    rows = 0
    try:
        with replacing(path) as partial, \
                pa.output_stream(str(partial), compression=compression) as sink:
            writer = ipc.new_file(sink, reader.schema) if file_format == "arrow" else \
                pa_csv.CSVWriter(sink, reader.schema)
            with writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
    except pa.ArrowException as e:
        raise CommandError(f"cannot write table {table.name!r} as "
                           f"{FORMAT_NAMES[file_format]}: {_one_line(e)}") from None
    return rows


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())

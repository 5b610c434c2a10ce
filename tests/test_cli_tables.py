"""``coldb tables``, ``describe``, ``import`` and ``export`` on real files: every format
both ways, ``--columns``, ``--where``, the import modes, the progress bar, and every
error path (one line, the right status, the database unchanged after a failed import
and no file left after a failed export).

Most commands run ``colibri_mm.cli.main.main`` in this process (output captured);
a few run the installed ``coldb`` script, as ``test_cli.py`` does throughout."""

import datetime
import fcntl
import gzip
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import colibri_mm as cm
from colibri_mm.cli.main import main
from colibri_mm.cli.table_commands import format_of, human_bytes

COLDB = str(Path(sys.executable).parent / "coldb")
SUMMARY = re.compile(r"imported ([\d,]+) rows? into table '(\w+)' \(([\d,]+\.\d\d) MB\) "
                     r"in (\d+\.\d\d) s \(([\d,]+) rows/s\)")

PEOPLE = pa.table({
    "id": pa.array([1, 2, 3, 4], pa.int64()),
    "name": pa.array(["ada", "bob", "cy", "dee"]),
    "score": pa.array([0.9, 0.4, None, 0.75]),
    "day": pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3, 4)]),
    "member": pa.array([True, False, True, None]),
})


class Coldb:
    """Runs ``coldb`` in this process on one database directory."""

    def __init__(self, capsys: pytest.CaptureFixture[str], directory: Path) -> None:
        self.capsys = capsys
        self.directory = directory

    def run(self, *args: str | Path, data_dir: bool = True) -> tuple[int, str, str]:
        argv = (["--data-dir", str(self.directory)] if data_dir else []) + \
            [str(a) for a in args]
        self.capsys.readouterr()
        status = main(argv)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, err
        return status, out, err

    def ok(self, *args: str | Path) -> str:
        status, out, err = self.run(*args)
        assert status == 0, err
        return out

    def error(self, status: int, *args: str | Path) -> str:
        """The one-line reason of a command that must fail with ``status``."""
        got, _out, err = self.run(*args)
        assert got == status, (got, err)
        lines = err.splitlines()
        assert lines[-1].startswith("coldb: error: "), lines
        if status != 2:  # usage errors print the usage line first
            assert len(lines) == 1, lines
        return lines[-1].removeprefix("coldb: error: ")


@pytest.fixture(autouse=True)
def no_data_dir_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLIBRI_DATA_DIR", raising=False)


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "db"
    assert main(["init", str(directory)]) == 0
    return directory


@pytest.fixture
def coldb(capsys: pytest.CaptureFixture[str], db_dir: Path) -> Coldb:
    return Coldb(capsys, db_dir)


def rows_of(db_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Table ``name`` read through the API, sorted by its first column."""
    with cm.connect(db_dir, readonly=True) as db:
        table = db.table(name).to_arrow_table(columns=columns)
    return table.sort_by(table.column_names[0])


def state(db_dir: Path) -> dict[str, object]:
    """Everything an import could change: table names, and each table's schema,
    primary key and rows."""
    with cm.connect(db_dir, readonly=True) as db:
        return {name: (db.table(name).schema, db.table(name).primary_key,
                       db.table(name).to_arrow_table().sort_by("id").to_pylist())
                for name in db.tables()}


def create_people(db_dir: Path, name: str = "people") -> None:
    with cm.connect(db_dir) as db:
        db.import_arrow(name, PEOPLE, primary_key="id")


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- source files -----------------------------------------------------------------------


def write_source(table: pa.Table, path: Path, kind: str) -> Path:
    """Write ``table`` to ``path`` as ``kind``; returns what to import."""
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=2)
    elif kind == "parquet-directory":
        path.mkdir()
        pq.write_table(table.slice(0, 2), path / "part-0.parquet")
        pq.write_table(table.slice(2), path / "part-1.parquet")
    elif kind == "arrow-file":
        with ipc.new_file(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=3):
                writer.write_batch(batch)
    elif kind == "arrow-stream":
        with ipc.new_stream(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=3):
                writer.write_batch(batch)
    elif kind == "feather":
        feather.write_feather(table, path)
    elif kind == "csv":
        pa_csv.write_csv(table, path)
    elif kind == "csv-gzip":
        with gzip.open(path, "wb") as file:
            pa_csv.write_csv(table, file)
    return path


SOURCES = [("parquet", "people.parquet"), ("parquet-directory", "people"),
           ("arrow-file", "people.arrow"), ("arrow-stream", "people.arrows"),
           ("arrow-stream", "people.ipc"), ("feather", "people.feather"),
           ("csv", "people.csv"), ("csv-gzip", "people.csv.gz")]


# -- tables and describe ----------------------------------------------------------------


def test_tables_lists_names_sorted(coldb: Coldb, db_dir: Path) -> None:
    assert coldb.ok("tables") == ""
    with cm.connect(db_dir) as db:
        for name in ("zeta", "alpha", "mid"):
            db.import_arrow(name, PEOPLE)
    assert coldb.ok("tables") == "alpha\nmid\nzeta\n"


def test_describe(coldb: Coldb, db_dir: Path) -> None:
    create_people(db_dir)
    with cm.connect(db_dir) as db:
        db.table("people").create_index("name")
        db.table("people").create_index(["day", "member"], kind="hash")
        stored = db.table("people").describe()["stored_bytes"]
    lines = coldb.ok("describe", "people").splitlines()
    assert lines == [
        "table:       people",
        "primary key: id",
        "rows:        4",
        "row groups:  0 (and 4 rows not yet in a row group)",
        f"stored:      {human_bytes(stored)} ({stored:,} bytes)",
        "columns:",
        "  column  type         nullable",
        "  id      int64        yes",
        "  name    string       yes",
        "  score   double       yes",
        "  day     date32[day]  yes",
        "  member  bool         yes",
        "indexes:",
        "  name (ordered)",
        "  day, member (hash)",
    ]


def test_describe_row_groups_non_null_columns_and_a_keyless_table(coldb: Coldb,
                                                                   db_dir: Path) -> None:
    schema = pa.schema([pa.field("a", pa.int32(), nullable=False),
                        pa.field("b", pa.large_string())])
    rows = pa.table({"a": pa.array(range(5000), pa.int32()),
                     "b": [str(i) * 3 for i in range(5000)]}, schema=schema)
    with cm.connect(db_dir, row_group_rows=1000) as db:
        db.import_arrow("log", rows)
        stored = db.table("log").describe()["stored_bytes"]
    text = coldb.ok("describe", "log")
    assert "primary key: none (a keyless table)\n" in text
    assert "rows:        5,000\n" in text
    assert "row groups:  5 (and 0 rows not yet in a row group)\n" in text
    assert f"({stored:,} bytes)" in text and stored > 1000
    assert "  a       int32         no\n" in text
    assert "  b       large_string  yes\n" in text
    assert text.endswith("indexes: none\n")


def test_describe_json(coldb: Coldb, db_dir: Path) -> None:
    with cm.connect(db_dir) as db:
        db.import_arrow("pairs", PEOPLE, primary_key=["name", "id"])
        db.table("pairs").create_index("day")
        expected = db.table("pairs").describe()
    described = json.loads(coldb.ok("describe", "pairs", "--json"))
    assert described == {
        "name": "pairs",
        "columns": [{"name": "id", "type": "int64", "nullable": True},
                    {"name": "name", "type": "string", "nullable": True},
                    {"name": "score", "type": "double", "nullable": True},
                    {"name": "day", "type": "date32[day]", "nullable": True},
                    {"name": "member", "type": "bool", "nullable": True}],
        "primary_key": ["name", "id"],
        "rows": 4,
        "row_groups": expected["row_groups"],
        "tail_rows": expected["tail_rows"],
        "stored_bytes": expected["stored_bytes"],
        "indexes": [{"columns": ["day"], "kind": "ordered"}],
    }
    assert "primary key: name, id\n" in coldb.ok("describe", "pairs")


@pytest.mark.parametrize(("count", "shown"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1536, "1.5 kB"), (999_949, "999.9 kB"),
    (1_000_000, "1.0 MB"), (2_500_000_000, "2.5 GB"), (7 * 10**12, "7.0 TB"),
    (5 * 10**15, "5000.0 TB"),
])
def test_human_bytes(count: int, shown: str) -> None:
    assert human_bytes(count) == shown


@pytest.mark.parametrize(("name", "found"), [
    ("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.parq", "parquet"),
    ("a.arrow", "arrow"), ("a.arrows", "arrow"), ("a.feather", "arrow"), ("a.ipc", "arrow"),
    ("a.csv", "csv"), ("a.b.CSV", "csv"), ("a.csv.gz", "csv"), ("a.csv.zst", "csv"),
    ("a.csv.bz2", "csv"), ("a.csv.lz4", "csv"),
    ("a.gz", None), ("a.parquet.gz", None), ("a.txt", None), ("a", None),
])
def test_format_of(name: str, found: str | None) -> None:
    assert format_of(Path(name)) == found


# -- import -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "file_name"), SOURCES)
def test_import_each_format(coldb: Coldb, db_dir: Path, tmp_path: Path, kind: str,
                            file_name: str) -> None:
    source = write_source(PEOPLE, tmp_path / file_name, kind)
    out = coldb.ok("import", source, "--table", "people", "--primary-key", "id")
    match = SUMMARY.fullmatch(out.strip())
    assert match is not None, out
    assert match.group(1, 2) == ("4", "people")
    assert rows_of(db_dir, "people").equals(PEOPLE)
    with cm.connect(db_dir, readonly=True) as db:
        assert db.table("people").primary_key == ("id",)


def test_import_a_hive_partitioned_dataset(coldb: Coldb, db_dir: Path,
                                           tmp_path: Path) -> None:
    table = PEOPLE.append_column("region", pa.array(["eu", "us", "eu", "us"]))
    pq.write_to_dataset(table, tmp_path / "by_region", partition_cols=["region"])
    assert (tmp_path / "by_region" / "region=eu").is_dir()
    coldb.ok("import", tmp_path / "by_region", "--table", "people")
    imported = rows_of(db_dir, "people")
    assert imported.column("region").to_pylist() == ["eu", "us", "eu", "us"]
    assert imported.select(PEOPLE.column_names).equals(PEOPLE)


@pytest.mark.parametrize(("kind", "file_name"), [("parquet", "p.parquet"),
                                                 ("arrow-file", "p.arrow"),
                                                 ("arrow-stream", "p.arrows"),
                                                 ("csv", "p.csv")])
def test_import_columns(coldb: Coldb, db_dir: Path, tmp_path: Path, kind: str,
                        file_name: str) -> None:
    source = write_source(PEOPLE, tmp_path / file_name, kind)
    coldb.ok("import", source, "--table", "t", "--columns", "score, id", "--primary-key", "id")
    with cm.connect(db_dir, readonly=True) as db:
        assert db.table("t").schema.names == ["score", "id"]
    assert rows_of(db_dir, "t", ["id", "score"]).equals(PEOPLE.select(["id", "score"]))


def test_import_format_option_overrides_the_extension(coldb: Coldb, db_dir: Path,
                                                      tmp_path: Path) -> None:
    write_source(PEOPLE, tmp_path / "a.dat", "arrow-file")
    write_source(PEOPLE, tmp_path / "c.txt", "csv")
    write_source(PEOPLE, tmp_path / "p.bin", "parquet")
    coldb.ok("import", tmp_path / "a.dat", "--table", "a", "--format", "arrow")
    coldb.ok("import", tmp_path / "c.txt", "--table", "c", "--format", "csv")
    coldb.ok("import", tmp_path / "p.bin", "--table", "p", "--format", "parquet")
    for name in "acp":
        assert rows_of(db_dir, name).equals(PEOPLE)


def test_import_modes(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    first = write_source(PEOPLE.slice(0, 2), tmp_path / "first.parquet", "parquet")
    changed = PEOPLE.slice(1, 3).set_column(1, "name", pa.array(["BOB", "CY", "DEE"]))
    second = write_source(changed, tmp_path / "second.arrow", "arrow-file")
    coldb.ok("import", first, "--table", "p", "--primary-key", "id", "--mode", "create")
    coldb.ok("import", write_source(PEOPLE.slice(2), tmp_path / "rest.csv", "csv"),
             "--table", "p", "--mode", "append")
    assert rows_of(db_dir, "p").equals(PEOPLE)

    out = coldb.ok("import", second, "--table", "p", "--mode", "upsert")
    assert out.startswith("imported 3 rows into table 'p'")
    assert rows_of(db_dir, "p").column("name").to_pylist() == ["ada", "BOB", "CY", "DEE"]

    other = pa.table({"key": ["x", "y"], "value": [1.5, 2.5]})
    coldb.ok("import", write_source(other, tmp_path / "other.parquet", "parquet"),
             "--table", "p", "--mode", "replace", "--primary-key", "key")
    with cm.connect(db_dir, readonly=True) as db:
        assert db.table("p").primary_key == ("key",)
        assert db.table("p").to_arrow_table().sort_by("key").equals(other)
    # replace also creates a table that does not exist
    coldb.ok("import", first, "--table", "new", "--mode", "replace")
    assert rows_of(db_dir, "new").equals(PEOPLE.slice(0, 2))


def test_import_a_composite_primary_key(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    coldb.ok("import", source, "--table", "p", "--primary-key", "name,id")
    with cm.connect(db_dir, readonly=True) as db:
        assert db.table("p").primary_key == ("name", "id")
        assert db.table("p").get(("cy", 3)) == PEOPLE.slice(2, 1).to_pylist()[0]


def test_csv_append_reads_columns_as_the_tables_types(coldb: Coldb, db_dir: Path,
                                                      tmp_path: Path) -> None:
    # Inferred, "007" would be the integer 7 and "2024-02-01" a date32; appended to a
    # table, the CSV is read with the table's types.
    schema = pa.schema([("zip", pa.string()), ("when", pa.timestamp("ms")),
                        ("n", pa.int16())])
    with cm.connect(db_dir) as db:
        db.create_table("places", schema, primary_key="zip")
    (tmp_path / "places.csv").write_text("zip,when,n\n007,2024-02-01 10:00:00,3\n"
                                         "010,2024-02-02 00:00:00,\n")
    coldb.ok("import", tmp_path / "places.csv", "--table", "places", "--mode", "append")
    assert rows_of(db_dir, "places").to_pylist() == [
        {"zip": "007", "when": datetime.datetime(2024, 2, 1, 10), "n": 3},
        {"zip": "010", "when": datetime.datetime(2024, 2, 2), "n": None}]
    (tmp_path / "more.csv").write_text("zip,when,n\n007,2024-03-01 00:00:00,4\n")
    coldb.ok("import", tmp_path / "more.csv", "--table", "places", "--mode", "upsert")
    assert rows_of(db_dir, "places").column("n").to_pylist() == [4, None]


def test_an_empty_arrow_file_creates_an_empty_table(coldb: Coldb, db_dir: Path,
                                                    tmp_path: Path) -> None:
    source = write_source(PEOPLE.slice(0, 0), tmp_path / "empty.arrow", "arrow-file")
    assert coldb.ok("import", source, "--table", "e").startswith(
        "imported 0 rows into table 'e'")
    with cm.connect(db_dir, readonly=True) as db:
        assert db.table("e").schema.equals(PEOPLE.schema)
        assert db.table("e").count() == 0


def test_import_progress_bar(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    parquet = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    csv = write_source(PEOPLE, tmp_path / "p.csv", "csv")
    status, out, err = coldb.run("import", parquet, "--table", "a", "--progress")
    assert status == 0 and "import a: 100%" in err
    assert SUMMARY.fullmatch(out.strip())
    status, out, err = coldb.run("import", csv, "--table", "b", "--progress")
    assert status == 0 and "import b" in err and "rows" in err
    status, out, err = coldb.run("import", csv, "--table", "c", "--no-progress")
    assert status == 0 and err == ""
    status, out, err = coldb.run("import", csv, "--table", "d")  # stderr is not a terminal
    assert status == 0 and err == ""


def test_the_progress_bar_is_on_by_default_on_a_terminal(db_dir: Path,
                                                         tmp_path: Path) -> None:
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    env = {k: v for k, v in os.environ.items() if k != "COLIBRI_DATA_DIR"}
    argv = [COLDB, "--data-dir", str(db_dir), "import", str(source)]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = subprocess.run([*argv, "--table", "tty"], stdout=subprocess.PIPE,
                                stderr=follower, env=env, timeout=120)
        os.close(follower)
        follower = -1
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert result.returncode == 0, terminal
    assert b"import tty: 100%" in terminal
    assert SUMMARY.fullmatch(result.stdout.decode().strip())

    piped = subprocess.run([*argv, "--table", "piped"], capture_output=True, env=env,
                           timeout=120)
    assert piped.returncode == 0 and piped.stderr == b""


# -- export -----------------------------------------------------------------------------


def read_back(path: Path, kind: str, schema: pa.Schema | None = None) -> pa.Table:
    if kind == "parquet":
        return pq.read_table(path)
    if kind == "arrow":
        with ipc.open_file(path) as reader:  # an IPC file, not a stream
            return reader.read_all()
    types = {} if schema is None else {f.name: f.type for f in schema}
    return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))


@pytest.mark.parametrize(("file_name", "kind"), [
    ("out.parquet", "parquet"), ("out.arrow", "arrow"), ("out.feather", "arrow"),
    ("out.csv", "csv"), ("out.csv.gz", "csv"),
])
def test_export_each_format(coldb: Coldb, db_dir: Path, tmp_path: Path, file_name: str,
                            kind: str) -> None:
    create_people(db_dir)
    target = tmp_path / file_name
    out = coldb.ok("export", "people", target)
    names = {"parquet": "Parquet", "arrow": "Arrow IPC", "csv": "CSV"}
    assert out == f"exported 4 rows of table 'people' to {target} ({names[kind]})\n"
    assert files_in(tmp_path) == sorted(["db", file_name])  # no .partial left
    assert read_back(target, kind, PEOPLE.schema).sort_by("id").equals(PEOPLE)
    if file_name.endswith(".gz"):
        assert target.read_bytes()[:2] == b"\x1f\x8b"
        assert gzip.decompress(target.read_bytes()).startswith(b'"id","name"')


@pytest.mark.parametrize(("kind", "file_name"), SOURCES)
def test_round_trip_through_each_format(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                        kind: str, file_name: str) -> None:
    create_people(db_dir, "source")
    export_kind = {"parquet-directory": "parquet", "csv-gzip": "csv", "feather": "arrow",
                   "arrow-file": "arrow", "arrow-stream": "arrow"}.get(kind, kind)
    target = tmp_path / (file_name + ".out")
    coldb.ok("export", "source", target, "--format", export_kind)
    coldb.ok("import", target, "--table", "copy", "--format", export_kind,
             "--primary-key", "id")
    assert rows_of(db_dir, "copy").equals(PEOPLE)


def test_export_format_option_and_replacing_a_file(coldb: Coldb, db_dir: Path,
                                                   tmp_path: Path) -> None:
    create_people(db_dir)
    target = tmp_path / "people.data"
    target.write_text("old contents")
    coldb.ok("export", "people", target, "--format", "arrow")
    assert read_back(target, "arrow").sort_by("id").equals(PEOPLE)
    coldb.ok("export", "people", target, "--format", "csv", "--columns", "name")
    assert target.read_text() == '"name"\n"ada"\n"bob"\n"cy"\n"dee"\n'


@pytest.mark.parametrize("kind", ["parquet", "arrow", "csv"])
def test_export_columns_and_where(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                  kind: str) -> None:
    create_people(db_dir)
    target = tmp_path / f"out.{kind}"
    out = coldb.ok("export", "people", target, "--columns", "name,id",
                   "--where", "score >= 0.5 and day >= '2024-01-02'")
    assert out.startswith("exported 1 row of table 'people'")
    got = read_back(target, kind, PEOPLE.schema)
    assert got.column_names == ["name", "id"]
    assert got.to_pylist() == [{"name": "dee", "id": 4}]


@pytest.mark.parametrize(("where", "ids"), [
    ("score == None", [3]),
    ("score != None", [1, 2, 4]),
    ("not member", [2]),
    ("member or name == 'cy'", [1, 3]),
    ("id in (2, 4) or score > 0.8", [1, 2, 4]),
    ("1 < id <= 3", [2, 3]),
    ("name > 'b' and name < 'd'", [2, 3]),
    ("col('day') == '2024-01-04'", [4]),
    ("id > 100", []),
])
def test_export_where(coldb: Coldb, db_dir: Path, tmp_path: Path, where: str,
                      ids: list[int]) -> None:
    create_people(db_dir)
    coldb.ok("export", "people", tmp_path / "out.parquet", "--where", where)
    assert sorted(pq.read_table(tmp_path / "out.parquet").column("id").to_pylist()) == ids


def test_export_reads_one_snapshot_of_checkpointed_and_new_rows(coldb: Coldb, db_dir: Path,
                                                                tmp_path: Path) -> None:
    many = pa.table({"id": pa.array(range(200_000), pa.int64()),
                     "v": pa.array(range(200_000), pa.float64())})
    with cm.connect(db_dir) as db:
        db.import_arrow("big", many, primary_key="id")
    with cm.connect(db_dir, checkpoint_on_close=False) as db, db.transaction() as tx:
        tx.delete_where("big", pc.field("id") >= 150_000)
        tx.insert("big", {"id": [-1], "v": [0.5]})
    out = coldb.ok("export", "big", tmp_path / "big.arrow", "--where", "v < 100000")
    assert out.startswith("exported 100,001 rows")
    got = read_back(tmp_path / "big.arrow", "arrow").sort_by("id")
    assert got.column("id").to_pylist() == [-1, *range(100_000)]


# -- errors: import ---------------------------------------------------------------------


def test_import_of_a_missing_file(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    assert coldb.error(3, "import", missing, "--table", "t") == \
        f"{missing}: no such file or directory"
    assert state(db_dir) == {}


def test_import_needs_a_table_and_a_known_mode(coldb: Coldb, tmp_path: Path) -> None:
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    assert "the following arguments are required: --table" in \
        coldb.error(2, "import", source)
    message = coldb.error(2, "import", source, "--table", "t", "--mode", "merge")
    assert "argument --mode: invalid choice: 'merge'" in message
    assert "invalid choice: 'xml'" in coldb.error(2, "import", source, "--table", "t",
                                                  "--format", "xml")


def test_import_of_an_unknown_extension(coldb: Coldb, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("a,b\n1,2\n")
    message = coldb.error(2, "import", tmp_path / "data.txt", "--table", "t")
    assert message == (f"cannot tell the format of {tmp_path / 'data.txt'} from its "
                       "extension; pass --format parquet|arrow|csv")


@pytest.mark.parametrize("fmt", ["csv", "arrow"])
def test_import_of_a_directory_is_parquet_only(coldb: Coldb, tmp_path: Path,
                                               fmt: str) -> None:
    directory = tmp_path / "parts"
    directory.mkdir()
    assert coldb.error(3, "import", directory, "--table", "t", "--format", fmt) == \
        f"{directory} is a directory; only Parquet data is read from a directory"


def test_import_into_an_existing_table_with_mode_create(coldb: Coldb, db_dir: Path,
                                                        tmp_path: Path) -> None:
    create_people(db_dir)
    before = state(db_dir)
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    assert coldb.error(3, "import", source, "--table", "people") == (
        "a table named 'people' already exists (--mode append, upsert or replace imports "
        "into it)")
    assert state(db_dir) == before


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_import_into_a_missing_table(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                     mode: str) -> None:
    for source in (write_source(PEOPLE, tmp_path / "p.parquet", "parquet"),
                   write_source(PEOPLE, tmp_path / "p.csv", "csv")):
        assert coldb.error(1, "import", source, "--table", "ghost", "--mode", mode) == (
            f"cannot {mode} into table 'ghost': there is no such table (--mode create or "
            "replace creates it)")
    assert state(db_dir) == {}


@pytest.mark.parametrize(("kind", "file_name"), [("parquet", "d.parquet"),
                                                 ("arrow-stream", "d.arrows"),
                                                 ("csv", "d.csv")])
def test_a_duplicate_key_imports_nothing(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                         kind: str, file_name: str) -> None:
    duplicated = pa.concat_tables([PEOPLE, PEOPLE.slice(2, 1)])
    source = write_source(duplicated, tmp_path / file_name, kind)
    message = coldb.error(3, "import", source, "--table", "t", "--primary-key", "id")
    assert "duplicate primary key id=3" in message
    assert state(db_dir) == {}  # not even the table was created

    create_people(db_dir, "t")
    before = state(db_dir)
    fresh_then_clash = PEOPLE.set_column(0, "id", pa.array([10, 11, 4, 12]))
    source = write_source(fresh_then_clash, tmp_path / ("b" + file_name), kind)
    message = coldb.error(3, "import", source, "--table", "t", "--mode", "append")
    assert "duplicate primary key id=4" in message
    assert state(db_dir) == before


def test_a_failure_after_whole_row_groups_were_written_imports_nothing(
        coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    # 150,000 rows, then one that repeats a key: two row groups of 65,536 rows are
    # written inside the transaction before the failure.
    create_people(db_dir)
    before = state(db_dir)
    lines = ["id,name"] + [f"{i},n{i}" for i in range(100, 150_100)] + ["100,again"]
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    message = coldb.error(3, "import", tmp_path / "big.csv", "--table", "people",
                          "--mode", "append")
    assert "duplicate primary key id=100" in message
    assert state(db_dir) == before
    message = coldb.error(3, "import", tmp_path / "big.csv", "--table", "big",
                          "--primary-key", "id")
    assert "duplicate primary key id=100" in message
    assert state(db_dir) == before
    assert coldb.ok("tables") == "people\n"


def test_a_schema_mismatch_imports_nothing(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    create_people(db_dir)
    before = state(db_dir)
    extra = PEOPLE.append_column("age", pa.array([1, 2, 3, 4]))
    source = write_source(extra, tmp_path / "extra.parquet", "parquet")
    assert coldb.error(3, "import", source, "--table", "people", "--mode", "append") == \
        "table 'people' has no column 'age'"
    wrong_key = write_source(PEOPLE, tmp_path / "p.arrow", "arrow-file")
    message = coldb.error(3, "import", wrong_key, "--table", "people", "--mode", "append",
                          "--primary-key", "name")
    assert "has primary key ('id',), not ('name',)" in message
    no_key = write_source(PEOPLE.drop_columns(["id"]), tmp_path / "nokey.csv", "csv")
    message = coldb.error(3, "import", no_key, "--table", "fresh", "--primary-key", "id")
    assert "'id'" in message
    assert state(db_dir) == before


def test_a_csv_value_that_does_not_fit_the_table(coldb: Coldb, db_dir: Path,
                                                 tmp_path: Path) -> None:
    create_people(db_dir)
    before = state(db_dir)
    (tmp_path / "bad.csv").write_text("id,name\n7,ok\nseven,bad\n")
    message = coldb.error(3, "import", tmp_path / "bad.csv", "--table", "people",
                          "--mode", "append")
    assert message.startswith(f"cannot read {tmp_path / 'bad.csv'} as CSV: ")
    assert "seven" in message
    assert state(db_dir) == before


def test_a_csv_that_goes_wrong_after_its_first_block(coldb: Coldb, db_dir: Path,
                                                     tmp_path: Path) -> None:
    # Types are inferred from the first block (1 MB): a later line that does not fit
    # fails while the import is under way.
    lines = ["id,x"] + [f"{i},{i}" for i in range(200_000)] + ["200000,not a number"]
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "late.csv").stat().st_size > 2 << 20
    message = coldb.error(3, "import", tmp_path / "late.csv", "--table", "late")
    assert message.startswith(f"cannot read {tmp_path / 'late.csv'} as CSV: ")
    assert "not a number" in message
    assert state(db_dir) == {}


@pytest.mark.parametrize(("file_name", "content", "says"), [
    ("junk.parquet", b"not parquet at all", "as Parquet"),
    ("junk.arrow", b"not arrow at all", "as Arrow IPC: neither an Arrow IPC file nor stream"),
    ("torn.arrow", b"ARROW1\x00\x00\xff\xff", "as Arrow IPC: neither an Arrow IPC file nor "
                                                "stream"),
    ("old.feather", b"FEA1" + bytes(64), "as Arrow IPC: it is a Feather version 1 file"),
    ("empty.csv", b"", "as CSV: Empty CSV file"),
    ("junk.csv.gz", b"not gzip", "as CSV: "),
])
def test_unreadable_files(coldb: Coldb, db_dir: Path, tmp_path: Path, file_name: str,
                          content: bytes, says: str) -> None:
    (tmp_path / file_name).write_bytes(content)
    message = coldb.error(3, "import", tmp_path / file_name, "--table", "t")
    assert message.startswith(f"cannot read {tmp_path / file_name} {says}"), message
    assert state(db_dir) == {}


def test_a_truncated_arrow_stream_imports_nothing(coldb: Coldb, db_dir: Path,
                                                  tmp_path: Path) -> None:
    source = write_source(PEOPLE, tmp_path / "s.arrows", "arrow-stream")
    data = source.read_bytes()
    source.write_bytes(data[:len(data) - 100])
    message = coldb.error(3, "import", source, "--table", "t")
    assert message.startswith(f"cannot read {source} as Arrow IPC: ")
    assert state(db_dir) == {}


@pytest.mark.parametrize(("kind", "file_name", "says"), [
    ("parquet", "p.parquet", "the Parquet data has no column 'nope' (it has id, name, "),
    ("arrow-file", "p.arrow", "cannot read {path} as Arrow IPC: it has no column 'nope' "
                              "(it has id, name, score, day, member)"),
    ("csv", "p.csv", "cannot read {path} as CSV: it has no column 'nope' (it has id, name, "
                     "score, day, member)"),
])
def test_import_columns_the_file_lacks(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                       kind: str, file_name: str, says: str) -> None:
    source = write_source(PEOPLE, tmp_path / file_name, kind)
    message = coldb.error(3, "import", source, "--table", "t", "--columns", "id,nope")
    assert message.startswith(says.format(path=source)), message
    assert state(db_dir) == {}


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--columns", "a,,b", "argument --columns: an empty column name in 'a,,b'"),
    ("--columns", "a,b,a", "argument --columns: column 'a' is named twice"),
    ("--primary-key", "", "argument --primary-key: an empty column name in ''"),
])
def test_bad_column_lists(coldb: Coldb, tmp_path: Path, option: str, value: str,
                          says: str) -> None:
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    assert coldb.error(2, "import", source, "--table", "t", option, value) == says
    if option == "--columns":
        assert coldb.error(2, "export", "t", tmp_path / "o.csv", option, value) == says


def test_import_into_a_locked_database(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    with cm.connect(db_dir):
        result = subprocess.run([COLDB, "--data-dir", str(db_dir), "import", str(source),
                                 "--table", "t"], capture_output=True, timeout=120)
        assert result.returncode == 3
        assert "locked" in result.stderr.decode()
        assert f"process {os.getpid()}" in result.stderr.decode()
    assert state(db_dir) == {}


# -- errors: export, describe, tables ---------------------------------------------------


@pytest.mark.parametrize("command", [["describe", "ghost"], ["describe", "ghost", "--json"],
                                     ["export", "ghost", "OUT/x.parquet"],
                                     ["export", "ghost", "OUT/x.csv"]])
def test_a_missing_table(coldb: Coldb, tmp_path: Path, command: list[str]) -> None:
    argv = [part.replace("OUT", str(tmp_path)) for part in command]
    assert coldb.error(1, *argv) == "no table named 'ghost' (`coldb tables` lists them)"
    assert files_in(tmp_path) == ["db"]


@pytest.mark.parametrize("file_name", ["x.parquet", "x.arrow", "x.csv"])
@pytest.mark.parametrize(("where", "status", "says"), [
    ("id + 1 > 2", 2, "--where: unsupported arithmetic: `id + 1`"),
    ("id = 2", 2, "--where: invalid syntax at column 4"),
    ("", 2, "--where: the expression is empty"),
    ("nope > 1", 3, "--where: no column 'nope' (the columns are id, name, score, day, "
                    "member)"),
    ("day > 'soon'", 3, "--where: column 'day' is date32[day]: 'soon' does not convert"),
    ("name > 1", 3, "table 'people': filter (name > 1) cannot be evaluated"),
])
def test_a_bad_where_writes_nothing(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                    file_name: str, where: str, status: int,
                                    says: str) -> None:
    create_people(db_dir)
    assert coldb.error(status, "export", "people", tmp_path / file_name,
                       "--where", where).startswith(says)
    assert files_in(tmp_path) == ["db"]


@pytest.mark.parametrize("file_name", ["x.parquet", "x.arrow", "x.csv"])
def test_export_of_a_column_the_table_lacks(coldb: Coldb, db_dir: Path, tmp_path: Path,
                                            file_name: str) -> None:
    create_people(db_dir)
    assert coldb.error(3, "export", "people", tmp_path / file_name, "--columns",
                       "id,nope") == "table 'people' has no column 'nope'"
    assert files_in(tmp_path) == ["db"]


def test_export_to_a_missing_directory_or_onto_a_directory(coldb: Coldb, db_dir: Path,
                                                           tmp_path: Path) -> None:
    create_people(db_dir)
    assert coldb.error(3, "export", "people", tmp_path / "no" / "x.csv") == \
        f"{tmp_path / 'no'}: no such directory"
    (tmp_path / "d.parquet").mkdir()
    assert coldb.error(3, "export", "people", tmp_path / "d.parquet") == \
        f"{tmp_path / 'd.parquet'} is a directory (export writes one file)"
    assert files_in(tmp_path) == ["d.parquet", "db"]


def test_export_of_an_unknown_extension(coldb: Coldb, db_dir: Path, tmp_path: Path) -> None:
    create_people(db_dir)
    assert coldb.error(2, "export", "people", tmp_path / "out.json") == (
        f"cannot tell the format to write from the extension of {tmp_path / 'out.json'}; "
        "pass --format parquet|arrow|csv")
    assert files_in(tmp_path) == ["db"]


def test_a_failed_export_leaves_no_file_and_keeps_an_old_one(coldb: Coldb, db_dir: Path,
                                                             tmp_path: Path) -> None:
    # CSV cannot hold bytes that are not UTF-8: the writer fails after the file was
    # opened and the first batch written.
    blobs = pa.table({"id": pa.array(range(70_000), pa.int64()),
                      "blob": pa.array([b"ok"] * 69_999 + [b"\xff"])})
    with cm.connect(db_dir) as db:
        db.import_arrow("blobs", blobs, primary_key="id")
    assert coldb.error(3, "export", "blobs", tmp_path / "new.csv") == \
        "cannot write table 'blobs' as CSV: Invalid UTF8 payload"
    assert files_in(tmp_path) == ["db"]
    (tmp_path / "old.csv").write_text("precious\n")
    coldb.error(3, "export", "blobs", tmp_path / "old.csv")
    assert (tmp_path / "old.csv").read_text() == "precious\n"
    assert files_in(tmp_path) == ["db", "old.csv"]
    # The other formats hold any bytes.
    coldb.ok("export", "blobs", tmp_path / "blobs.arrow")
    assert read_back(tmp_path / "blobs.arrow", "arrow").sort_by("id").equals(blobs)
    coldb.ok("export", "blobs", tmp_path / "ok.csv", "--where", "blob == b'ok'")
    assert len((tmp_path / "ok.csv").read_text().splitlines()) == 70_000


def test_table_commands_need_a_database(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    for argv in (["tables"], ["describe", "t"], ["export", "t", "x.csv"]):
        assert main(argv) == 2
        assert "no database directory" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path / "missing"), "tables"]) == 3
    assert "no such directory" in capsys.readouterr().err
    source = write_source(PEOPLE, tmp_path / "p.parquet", "parquet")
    assert main(["--data-dir", str(tmp_path), "import", str(source), "--table", "t"]) == 3
    assert "is not a colibri-mm database" in capsys.readouterr().err


# -- the installed script ----------------------------------------------------------------


def test_the_coldb_script(db_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLIBRI_DATA_DIR"}
    env["COLIBRI_DATA_DIR"] = str(db_dir)

    def coldb(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([COLDB, *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=120)

    source = write_source(PEOPLE, tmp_path / "people.csv", "csv")
    imported = coldb("import", source, "--table", "people", "--primary-key", "id")
    assert imported.returncode == 0 and imported.stderr == ""
    assert SUMMARY.fullmatch(imported.stdout.strip())
    assert coldb("tables").stdout == "people\n"
    assert json.loads(coldb("describe", "people", "--json").stdout)["rows"] == 4
    exported = coldb("export", "people", tmp_path / "out.parquet", "--where", "id >= 3")
    assert exported.returncode == 0, exported.stderr
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == [3, 4]
    missing = coldb("describe", "nobody")
    assert missing.returncode == 1
    assert missing.stderr == "coldb: error: no table named 'nobody' (`coldb tables` lists " \
                             "them)\n"
    top = coldb("--help").stdout
    for command in ("tables", "describe", "import", "export"):
        assert re.search(rf"^    {command} ", top, re.MULTILINE), top
    assert "a missing table, like" in top
    assert "x == None" in coldb("export", "--help").stdout


def test_imports_read_by_a_dataset_written_by_export(coldb: Coldb, db_dir: Path,
                                                     tmp_path: Path) -> None:
    # Exported Parquet files are ordinary: pyarrow.dataset reads a directory of them.
    create_people(db_dir)
    (tmp_path / "set").mkdir()
    coldb.ok("export", "people", tmp_path / "set" / "a.parquet", "--where", "id <= 2")
    coldb.ok("export", "people", tmp_path / "set" / "b.parquet", "--where", "id > 2")
    assert ds.dataset(tmp_path / "set").to_table().sort_by("id").equals(PEOPLE)
    coldb.ok("import", tmp_path / "set", "--table", "again", "--primary-key", "id")
    assert rows_of(db_dir, "again").equals(PEOPLE)


def test_compact_rewrites_sparse_chunks_and_checkpoints(coldb: Coldb, db_dir: Path) -> None:
    with cm.connect(db_dir) as db:
        db.import_arrow("t", pa.table({"id": list(range(1000)), "x": [1.0] * 1000}),
                        primary_key="id")
        with db.transaction() as tx:
            tx.delete_where("t", pc.field("id") < 100)
        db.import_arrow("other", PEOPLE, primary_key="id")
    report = json.loads(coldb.ok("compact", "t"))
    assert report["tables"] == {"t": {"chunks_rewritten": 1, "rows_moved": 900,
                                      "deleted_rows_dropped": 100}}
    assert report["checkpoint"]["entries"] > 0
    assert rows_of(db_dir, "t")["id"].to_pylist() == list(range(100, 1000))
    assert set(json.loads(coldb.ok("compact"))["tables"]) == {"t", "other"}
    assert coldb.error(1, "compact", "nope") == \
        "no table named 'nope' (`coldb tables` lists them)"

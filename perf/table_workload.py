"""A numbered workload over tables, an exact model of it, and the checks of a database
against the model: what the table crash, power-loss and corruption campaigns share.

Step ``i`` is one commit (or, for a compaction with nothing to do, none) and depends
on ``i`` and the seed only, never on what the database holds, so a process that
starts after a crash continues with step ``L + 1`` knowing only ``L``. Steps follow a
cycle of :data:`CYCLE`: cycle ``k`` creates table ``t<k>`` (keyed by ``id``, or
keyless every third cycle), indexes its ``grp`` column, compacts it, adds a column
``extra``, indexes its ``tag`` column (ordered and hash alternate), renames it to
``r<k>``, compacts it and the table of cycle ``k - 1``, and drops the table of cycle
``k - 2``. Every other step is a row transaction: it inserts rows into the current
table (about one in :data:`BIG_EVERY` inserts thousands, which go the bulk way) and,
by a hash of ``i``, upserts, updates, deletes and deletes by a filter there and in
the table of the previous cycle, and sets the key/value ``step`` to ``i``, all in one
transaction. Row ids say which step wrote them (``id // ID_STRIDE``).

:class:`Model` applies steps to plain dicts; :func:`observe` reads a database into
the same form (tables with their keys, columns, indexes and rows, and the key/value
pairs); :func:`check_tables` also runs ``verify()``, ``count()``, every index through
``find()`` and point reads, so indexes are checked against the rows.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import colibri_mm as cm
from perf.crash_campaign import CampaignError, mix

CYCLE = 32
"""Steps per table cycle."""
CREATE, DROP_OLD, INDEX_GRP, COMPACT, ADD_COLUMN, INDEX_TAG, RENAME, COMPACT_PREV, \
    COMPACT_RENAMED = 0, 3, 6, 11, 14, 18, 21, 26, 29
"""Positions in a cycle of its catalog changes and compactions (the rest are rows)."""
KINDS = ("ordered", "hash")
GROUPS = 6
"""Values of column ``grp`` (0 .. GROUPS - 1)."""
TAGS: tuple[str | None, ...] = ("a", "b", "c", None)
"""Values of column ``tag`` (null included, so indexes hold nulls)."""
ID_STRIDE = 4096
"""Row ids of step ``i`` are ``i * ID_STRIDE + j``."""
BIG_EVERY = 40
"""About one row transaction in this many inserts BIG_MIN..BIG_MAX rows."""
BIG_MIN, BIG_MAX = 1000, 2500
UPSERT_NEW = 4000
"""An upsert of step ``i`` also writes the new row ``i * ID_STRIDE + UPSERT_NEW``."""
EXTRA_DEFAULT = -1
"""What rows written before ``add_column`` read in ``extra``."""
STEP_KEY = b"step"
"""Key/value pair that each row transaction sets to its number."""
CHECKPOINT_EVERY = 24
"""About one step in this many is followed by ``db.checkpoint()`` (where the caller
asks for checkpoints)."""
GET_SAMPLE = 40
"""Rows of each keyed table read back with ``get`` at each check."""

Row = dict[str, Any]


@dataclass(frozen=True)
class RowOp:
    """One change of a row transaction."""

    verb: str
    """insert, upsert, update, delete or delete_where."""
    table: str
    rows: tuple[Row, ...] = ()
    """Rows to insert or upsert."""
    key: int = 0
    """Primary key to update or delete."""
    changes: tuple[tuple[str, Any], ...] = ()
    """Columns an update sets."""
    group: int = 0
    below: int = 0
    """delete_where removes the rows with ``grp == group and val < below``."""


@dataclass(frozen=True)
class Step:
    """What step ``i`` does: one catalog change or compaction, or a row transaction."""

    i: int
    verb: str
    """rows, create, drop, index, compact, add_column or rename."""
    table: str
    keyed: bool = True
    """For create: whether the table has the primary key ``id``."""
    column: str = ""
    """For index: the indexed column. For rename: the new name."""
    kind: str = ""
    """For index: ordered or hash."""
    ops: tuple[RowOp, ...] = ()


@dataclass(frozen=True)
class Workload:
    """The steps of one seed (``big``: whether some inserts are thousands of rows)."""

    seed: int
    big: bool = True

    def step(self, i: int) -> Step:
        """Step ``i`` (numbered from 1)."""
        k, position = divmod(i - 1, CYCLE)
        name = _name(k, position)
        catalog = {CREATE: Step(i, "create", name, keyed=_keyed(k)),
                   INDEX_GRP: Step(i, "index", name, column="grp", kind=KINDS[k % 2]),
                   COMPACT: Step(i, "compact", name),
                   ADD_COLUMN: Step(i, "add_column", name),
                   INDEX_TAG: Step(i, "index", name, column="tag", kind=KINDS[(k + 1) % 2]),
                   RENAME: Step(i, "rename", name, column=_name(k, RENAME + 1)),
                   COMPACT_RENAMED: Step(i, "compact", name)}
        if position in catalog:
            return catalog[position]
        if position == DROP_OLD and k >= 2:
            return Step(i, "drop", _name(k - 2, CYCLE))
        if position == COMPACT_PREV and k >= 1:
            return Step(i, "compact", _name(k - 1, CYCLE))
        return Step(i, "rows", name, ops=self._row_ops(i, k, position))

    def _row_ops(self, i: int, k: int, position: int) -> tuple[RowOp, ...]:
        h = mix(i, self.seed)
        name = _name(k, position)
        extra = position > ADD_COLUMN
        count = 1 + h % 5
        if self.big and (h >> 40) % BIG_EVERY == 0:
            count = BIG_MIN + (h >> 8) % (BIG_MAX - BIG_MIN + 1)
        ops = [RowOp("insert", name, tuple(_row(i * ID_STRIDE + j, i, extra)
                                           for j in range(count)))]
        first = max(k * CYCLE + 1, i - 12)  # an earlier step of this cycle
        earlier = first + (h >> 4) % max(1, i - first)
        if _keyed(k):
            if (h >> 12) % 3 == 0:
                ops.append(RowOp("upsert", name, (_row(earlier * ID_STRIDE, i, extra),
                                                  _row(i * ID_STRIDE + UPSERT_NEW, i, extra))))
            if (h >> 14) % 3 == 0:
                ops.append(RowOp("update", name, key=earlier * ID_STRIDE + 1, changes=(
                    ("val", -i), ("grp", (h >> 16) % GROUPS),
                    ("tag", TAGS[(h >> 20) % len(TAGS)]))))
            if (h >> 22) % 4 == 0:
                ops.append(RowOp("delete", name, key=earlier * ID_STRIDE + 2))
        if (h >> 24) % 5 == 0:
            ops.append(RowOp("delete_where", name, group=(h >> 27) % GROUPS,
                             below=(i - 6) * 10))
        if k >= 1 and (h >> 30) % 3 == 0:  # the table of the previous cycle
            previous = _name(k - 1, CYCLE)
            row_step = (k - 1) * CYCLE + 1 + (h >> 32) % CYCLE
            if _keyed(k - 1) and (h >> 37) % 2:
                ops.append(RowOp("update", previous, key=row_step * ID_STRIDE,
                                 changes=(("note", f"u{i}"),)))
            elif _keyed(k - 1):
                ops.append(RowOp("delete", previous, key=row_step * ID_STRIDE + 3))
            else:
                ops.append(RowOp("delete_where", previous, group=(h >> 37) % GROUPS,
                                 below=row_step * 10))
        return tuple(ops)

    def wants_checkpoint(self, i: int) -> bool:
        """Whether a caller that mixes in checkpoints takes one after step ``i``."""
        return mix(i, self.seed ^ 0x5A5A) % CHECKPOINT_EVERY == 0


def _keyed(k: int) -> bool:
    return k % 3 != 2


def _name(k: int, position: int) -> str:
    """Name of the table of cycle ``k`` at ``position`` of that cycle (or later)."""
    return f"t{k}" if position <= RENAME else f"r{k}"


def _row(row_id: int, i: int, extra: bool) -> Row:
    """Row ``row_id`` as step ``i`` writes it."""
    row: Row = {"id": row_id, "grp": (row_id + i) % GROUPS,
                "tag": TAGS[(row_id * 3 + i) % len(TAGS)], "val": i * 10 + row_id % 10,
                "note": f"n{row_id}." * (1 + (row_id * 7 + i) % 5)}
    if extra:
        row["extra"] = i
    return row


SCHEMA = pa.schema([("id", pa.int64()), ("grp", pa.int64()), ("tag", pa.string()),
                    ("val", pa.int64()), ("note", pa.string())])
EXTRA = pa.field("extra", pa.int64())


# -- running steps against a database -----------------------------------------------------


def commit_step(db: cm.Database, step: Step) -> None:
    """Commit ``step`` through the public API."""
    if step.verb == "rows":
        with db.transaction() as tx:
            for op in step.ops:
                _apply_op(tx, op)
            tx.kv.put(STEP_KEY, b"%d" % step.i)
    elif step.verb == "create":
        db.create_table(step.table, SCHEMA, primary_key="id" if step.keyed else None)
    elif step.verb == "drop":
        db.drop_table(step.table)
    elif step.verb == "rename":
        db.rename_table(step.table, step.column)
    elif step.verb == "index":
        db.table(step.table).create_index(step.column, kind=step.kind)
    elif step.verb == "compact":
        db.table(step.table).compact()
    elif step.verb == "add_column":
        db.table(step.table).add_column(EXTRA, default=EXTRA_DEFAULT)
    else:
        raise ValueError(f"unknown step verb {step.verb!r}")


def _apply_op(tx: cm.Transaction, op: RowOp) -> None:
    if op.verb == "insert":
        tx.insert(op.table, list(op.rows))
    elif op.verb == "upsert":
        tx.upsert(op.table, list(op.rows))
    elif op.verb == "update":
        tx.update(op.table, op.key, dict(op.changes))
    elif op.verb == "delete":
        tx.delete(op.table, op.key)
    else:
        tx.delete_where(op.table, (pc.field("grp") == op.group) & (pc.field("val") < op.below))


# -- the model ------------------------------------------------------------------------------


@dataclass
class TableModel:
    """What one table holds."""

    keyed: bool
    columns: list[str] = field(default_factory=lambda: list(SCHEMA.names))
    indexes: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    rows: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    """Row id -> the row's values in column order."""

    def state(self) -> TableState:
        return TableState(("id",) if self.keyed else None, tuple(self.columns),
                          tuple(sorted(self.indexes)),
                          tuple(self.rows[key] for key in sorted(self.rows)))


@dataclass(frozen=True)
class TableState:
    """A table as compared: key, columns, indexes, rows sorted by id."""

    primary_key: tuple[str, ...] | None
    columns: tuple[str, ...]
    indexes: tuple[tuple[tuple[str, ...], str], ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class State:
    """A whole database as compared: its tables and its key/value pairs."""

    tables: dict[str, TableState]
    kv: dict[bytes, bytes]


class Model:
    """The database after steps ``1..last`` of a workload, as plain dicts."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.last = 0
        self.tables: dict[str, TableModel] = {}
        self.kv: dict[bytes, bytes] = {}

    def advance(self, last: int) -> None:
        """Apply the steps after :attr:`last` up to ``last``."""
        while self.last < last:
            self.last += 1
            self._apply(self.workload.step(self.last))

    def after(self, last: int) -> Model:
        """A copy advanced to ``last``."""
        model = copy.deepcopy(self)
        model.advance(last)
        return model

    def state(self) -> State:
        return State({name: table.state() for name, table in self.tables.items()},
                     dict(self.kv))

    def _apply(self, step: Step) -> None:
        if step.verb == "create":
            self.tables[step.table] = TableModel(step.keyed)
        elif step.verb == "drop":
            del self.tables[step.table]
        elif step.verb == "rename":
            self.tables[step.column] = self.tables.pop(step.table)
        elif step.verb == "index":
            self.tables[step.table].indexes.append(((step.column,), step.kind))
        elif step.verb == "add_column":
            table = self.tables[step.table]
            table.columns.append(EXTRA.name)
            table.rows = {key: (*row, EXTRA_DEFAULT) for key, row in table.rows.items()}
        elif step.verb == "rows":
            for op in step.ops:
                self._apply_op(self.tables[op.table], op)
            self.kv[STEP_KEY] = b"%d" % step.i

    @staticmethod
    def _apply_op(table: TableModel, op: RowOp) -> None:
        if op.verb in ("insert", "upsert"):
            for row in op.rows:
                table.rows[row["id"]] = tuple(row[c] for c in table.columns)
        elif op.verb == "update":
            if op.key in table.rows:
                values = dict(zip(table.columns, table.rows[op.key], strict=True))
                values.update(op.changes)
                table.rows[op.key] = tuple(values[c] for c in table.columns)
        elif op.verb == "delete":
            table.rows.pop(op.key, None)
        else:
            grp, val = table.columns.index("grp"), table.columns.index("val")
            table.rows = {key: row for key, row in table.rows.items()
                          if not (row[grp] == op.group and row[val] < op.below)}


# -- reading a database and checking it -----------------------------------------------------


def observe(snap: cm.Snapshot) -> State:
    """Everything a snapshot holds, in the form the model gives."""
    tables = {}
    for name in snap.tables():
        table = snap.table(name)
        columns = tuple(table.schema.names)
        rows = [tuple(row[c] for c in columns)
                for row in table.scan().to_arrow_table().to_pylist()]
        tables[name] = TableState(table.primary_key, columns,
                                  tuple(sorted((tuple(i["columns"]), i["kind"])
                                               for i in table.indexes)),
                                  tuple(sorted(rows, key=lambda row: row[0])))
    return State(tables, dict(snap.kv.scan()))


def check_tables(snap: cm.Snapshot, model: Model) -> None:
    """Beyond the content: every table verifies, counts its rows, answers every index
    lookup and point read as the model says; raises :class:`CampaignError`."""
    for name, expected in model.tables.items():
        table = snap.table(name)
        problems = table.verify()
        if problems:
            raise CampaignError(f"table {name} after step {model.last} does not verify: "
                                + "; ".join(problems[:3]))
        if table.count() != len(expected.rows):
            raise CampaignError(f"table {name} counts {table.count()} rows, the model "
                                f"{len(expected.rows)}")
        for (column,), _ in expected.indexes:
            at = expected.columns.index(column)
            domain: Sequence[Any] = range(GROUPS) if column == "grp" else TAGS
            for value in domain:
                found = sorted(table.find({column: value}).column("id").to_pylist())
                wanted = sorted(k for k, row in expected.rows.items() if row[at] == value)
                if found != wanted:
                    raise CampaignError(f"table {name}: find({column}={value!r}) gives "
                                        f"{_ids(set(found) - set(wanted))} more and "
                                        f"{_ids(set(wanted) - set(found))} fewer ids "
                                        "than the model")
        if expected.keyed:
            keys = sorted(expected.rows)[::max(1, len(expected.rows) // GET_SAMPLE)]
            for key in keys:
                got = table.get(key)
                if got is None or tuple(got[c] for c in expected.columns) != \
                        expected.rows[key]:
                    raise CampaignError(f"table {name}: get({key}) gives {got}, the model "
                                        f"{expected.rows[key]}")
            for key in (-1, (model.last + 1) * ID_STRIDE):
                if table.get(key) is not None:
                    raise CampaignError(f"table {name}: get({key}) finds a row")


def describe_difference(found: State, expected: State) -> str:
    """What differs between two states, by table (row ids name their steps)."""
    parts = []
    if found.kv != expected.kv:
        parts.append(f"key/value pairs {found.kv} instead of {expected.kv}")
    for name in sorted(found.tables.keys() | expected.tables.keys()):
        have, want = found.tables.get(name), expected.tables.get(name)
        if have is None or want is None:
            parts.append(f"table {name} {'missing' if have is None else 'unexpected'}")
            continue
        for what in ("primary_key", "columns", "indexes"):
            if getattr(have, what) != getattr(want, what):
                parts.append(f"table {name}: {what} {getattr(have, what)} instead of "
                             f"{getattr(want, what)}")
        rows_have = {row[0]: row for row in have.rows}
        rows_want = {row[0]: row for row in want.rows}
        missing = rows_want.keys() - rows_have.keys()
        extra = rows_have.keys() - rows_want.keys()
        wrong = {k for k in rows_want.keys() & rows_have.keys() if rows_have[k] != rows_want[k]}
        repeated = len(have.rows) - len(rows_have)
        for what, ids in (("missing", missing), ("unexpected", extra), ("differing", wrong)):
            if ids:
                parts.append(f"table {name}: {len(ids)} {what} rows {_ids(ids)}")
        if repeated:
            parts.append(f"table {name}: {repeated} repeated row ids")
    return "; ".join(parts) or "nothing"


def _ids(ids: set[int]) -> str:
    """A few row ids with the steps that wrote them."""
    shown = sorted(ids)[:4]
    return "[" + ", ".join(f"{i} (step {i // ID_STRIDE})" for i in shown) + \
        (", ...]" if len(ids) > len(shown) else "]")


class Tracker:
    """The model of what a database must hold, advanced check by check.

    :meth:`check` accepts exactly the state after the last acknowledged step or the
    one after it (the step in flight), and then holds the model of that state.
    """

    def __init__(self, workload: Workload) -> None:
        self.model = Model(workload)

    @property
    def last(self) -> int:
        """The step the last check found."""
        return self.model.last

    def check(self, db: cm.Database, acked: int) -> int:
        """Check ``db`` after step ``acked`` was acknowledged; returns the step it holds
        (``acked`` or ``acked + 1``) or raises :class:`CampaignError`."""
        if acked < self.model.last:
            raise ValueError(f"step {acked} is before the last one found, {self.model.last}")
        self.model.advance(acked)
        in_flight = self.model.after(acked + 1)
        with db.snapshot() as snap:
            found = observe(snap)
            if found == in_flight.state():
                self.model = in_flight
            elif found != self.model.state():
                raise CampaignError(self._mismatch(found, in_flight))
            check_tables(snap, self.model)
        return self.model.last

    def _mismatch(self, found: State, in_flight: Model) -> str:
        acked = self.model.last
        step = int(found.kv.get(STEP_KEY, b"0"))
        if step < int(self.model.kv.get(STEP_KEY, b"0")):
            cause = f"lost acknowledged commits (row step {step} is the last present)"
        elif step > int(in_flight.kv.get(STEP_KEY, b"0")):
            cause = f"row step {step} is visible: more than the one in flight"
        else:
            cause = "a lost or partial step"
        return (f"the database is neither as after step {acked} (acknowledged) nor as "
                f"after step {acked + 1}: {cause}; against step {acked}: "
                + describe_difference(found, self.model.state()))

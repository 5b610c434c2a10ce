"""Row filters written as text (``coldb export --where``, Arrow Flight tickets): a
small language, parsed safely into a ``pyarrow.compute`` expression.

The text is parsed by Python's :mod:`ast` (never evaluated) and only these forms are
accepted; anything else is an error naming the part that is not:

- comparisons ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` of a column with a literal or
  another column, chained as in Python (``0 < x <= 5``);
- ``x == None`` or ``x is None`` (the value is null), ``x != None`` or
  ``x is not None`` (it is not);
- ``x in (1, 2, 3)`` and ``x not in (...)``, with a tuple, list or set of literals
  (not None);
- ``and``, ``or``, ``not`` (also written ``&``, ``|``, ``~``) and parentheses;
- column names: identifiers, or ``col("any name")`` for a name that is not one; a
  column alone is a condition when it is boolean;
- literals: integers (``-3``), floats, strings, bytes, ``True``, ``False``, ``None``.

Comparisons follow Arrow (and SQL): a comparison with a null value is null, so is
``in`` and ``not in`` of one, and ``and``, ``or`` and ``not`` follow three-valued
logic; rows for which the whole expression is null are not selected.

Given the table's schema, every column must exist, and a string literal compared
with a column of another type is converted to that type, so dates and timestamps
are written as ``'2024-01-31'`` or ``'2024-01-31 12:00'``.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SUMMARY = ("comparisons (== != < <= > >=), `is None`, `in (...)`, and/or/not, "
           "parentheses, column names and literals")
"""What the language allows, for error messages and help."""


class WhereError(ValueError):
    """A ``--where`` expression that cannot be used (the message says why)."""


class WhereSyntaxError(WhereError):
    """The text is not an expression of the language."""


class WhereColumnError(WhereError):
    """The expression names a column the table lacks, or compares a column with a
    string that does not convert to the column's type."""


@dataclass(frozen=True)
class _Column:
    name: str


@dataclass(frozen=True)
class _Literal:
    value: Any


_Operand = _Column | _Literal

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_MIRRORED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.Eq, ast.NotEq: ast.NotEq, ast.Lt: ast.Gt, ast.LtE: ast.GtE,
    ast.Gt: ast.Lt, ast.GtE: ast.LtE,
}
"""The operator that compares the same way with its operands swapped."""
_SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}
_SINGLE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")
_LITERAL_TYPES = (bool, int, float, str, bytes, type(None))
_KINDS: dict[type[ast.AST], str] = {
    ast.Call: "function call", ast.Attribute: "attribute access",
    ast.Subscript: "subscript", ast.BinOp: "arithmetic", ast.UnaryOp: "arithmetic",
    ast.Lambda: "lambda",
    ast.IfExp: "conditional expression", ast.NamedExpr: "assignment expression",
    ast.JoinedStr: "f-string", ast.Dict: "dict", ast.List: "list", ast.Tuple: "tuple",
    ast.Set: "set", ast.ListComp: "comprehension", ast.SetComp: "comprehension",
    ast.DictComp: "comprehension", ast.GeneratorExp: "generator expression",
    ast.Starred: "starred expression", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def parse(text: str, schema: pa.Schema | None = None) -> pc.Expression:
    """The ``pyarrow.compute`` expression that ``text`` means (see the module
    docstring); with ``schema``, columns are checked and string literals converted.

    Raises :class:`WhereSyntaxError` or :class:`WhereColumnError`.
    """
    return _Parser(text, schema).parse()


class _Parser:
    """One parse of one text: the text (to quote parts of it) and the schema."""

    def __init__(self, text: str, schema: pa.Schema | None) -> None:
        self.text = text.strip()
        self.schema = schema

    def parse(self) -> pc.Expression:
        if not self.text:
            raise WhereSyntaxError("the expression is empty")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as e:
            where = f" at column {e.offset}" if e.offset else ""
            hint = " (compare with ==, not =)" if _SINGLE_EQUALS.search(self.text) else ""
            raise WhereSyntaxError(f"invalid syntax{where}: {e.msg}{hint}") from None
        except (RecursionError, MemoryError):
            raise WhereSyntaxError("the expression is nested too deeply") from None
        try:
            return self._condition(tree.body)
        except RecursionError:
            raise WhereSyntaxError("the expression is nested too deeply") from None

    # -- conditions: what and/or/not combine ------------------------------------------

    def _condition(self, node: ast.expr) -> pc.Expression:
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            return reduce(combine, [self._condition(value) for value in node.values])
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            combine = operator.and_ if isinstance(node.op, ast.BitAnd) else operator.or_
            return combine(self._condition(node.left), self._condition(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self._condition(node.operand)
        if isinstance(node, ast.Compare):
            return self._comparisons(node)
        operand = self._operand(node)
        if isinstance(operand, _Literal):
            raise WhereSyntaxError(f"a literal is not a condition: {self._quote(node)} "
                                   "(compare a column with it)")
        self._check_boolean(operand)
        return pc.field(operand.name)

    def _comparisons(self, node: ast.Compare) -> pc.Expression:
        """``a < b < c`` as ``a < b and b < c``, as Python reads it."""
        left = node.left
        parts = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self._comparison(left, op, right))
            left = right
        return reduce(operator.and_, parts)

    def _comparison(self, left_node: ast.expr, op: ast.cmpop,
                    right_node: ast.expr) -> pc.Expression:
        symbol = _SYMBOLS[type(op)]
        if isinstance(op, (ast.In, ast.NotIn)):
            column = self._operand(left_node)
            if not isinstance(column, _Column):
                raise WhereSyntaxError(f"the left side of `{symbol}` must be a column: "
                                       f"{self._quote(left_node)}")
            field = pc.field(column.name)
            # A null value is neither in the list nor out of it (as == and != say).
            test = pc.if_else(field.is_valid(), field.isin(self._values(right_node, column)),
                              pa.scalar(None, pa.bool_()))
            return ~test if isinstance(op, ast.NotIn) else test
        left, right = self._operand(left_node), self._operand(right_node)
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            raise WhereSyntaxError(f"compares two literals: "
                                   f"{self._quote(left_node)} {symbol} "
                                   f"{self._quote(right_node)} (one side must be a column)")
        if isinstance(left, _Literal):  # 5 < x: x > 5
            left, right = right, left
            op = _MIRRORED[type(op)]() if type(op) in _MIRRORED else op
        assert isinstance(left, _Column)
        field = pc.field(left.name)
        if isinstance(right, _Literal) and right.value is None:
            if isinstance(op, (ast.Eq, ast.Is)):
                return field.is_null()
            if isinstance(op, (ast.NotEq, ast.IsNot)):
                return field.is_valid()
            raise WhereSyntaxError(f"None can only be compared with == or != (or `is` / "
                                   f"`is not`), not `{symbol}`")
        if isinstance(op, (ast.Is, ast.IsNot)):
            raise WhereSyntaxError(f"`{symbol}` only tests for None (use == or != to "
                                   "compare values)")
        comparison = _COMPARISONS[type(op)]
        if isinstance(right, _Column):
            return comparison(field, pc.field(right.name))
        return comparison(field, self._scalar(right.value, left))

    # -- operands: columns and literals ----------------------------------------------

    def _operand(self, node: ast.expr) -> _Operand:
        if isinstance(node, ast.Name):
            return self._column(node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "col":
            if len(node.args) == 1 and not node.keywords and \
                    isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str):
                return self._column(node.args[0].value)
            raise WhereSyntaxError(f"col() takes one string, the column's name: "
                                   f"{self._quote(node)}")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, _LITERAL_TYPES):
                return _Literal(node.value)
            raise self._unsupported(node, "literal")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and \
                isinstance(node.operand, ast.Constant) and \
                isinstance(node.operand.value, (int, float)) and \
                not isinstance(node.operand.value, bool):
            value = node.operand.value
            return _Literal(-value if isinstance(node.op, ast.USub) else value)
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            raise WhereSyntaxError(f"a comparison cannot be compared again: "
                                   f"{self._quote(node)} (use and / or to combine "
                                   "conditions, with parentheses)")
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            raise WhereSyntaxError(f"{self._quote(node)} is not a column or a literal: `&` "
                                   "and `|` bind tighter than comparisons, so put each "
                                   "comparison in parentheses (or use and / or)")
        raise self._unsupported(node)

    def _column(self, name: str) -> _Column:
        if self.schema is not None and self.schema.get_field_index(name) < 0:
            raise WhereColumnError(f"no column {name!r} (the columns are "
                                   f"{', '.join(self.schema.names)})")
        return _Column(name)

    def _check_boolean(self, column: _Column) -> None:
        if self.schema is None:
            return
        column_type = self.schema.field(column.name).type
        if column_type != pa.bool_():
            raise WhereColumnError(f"column {column.name!r} is {column_type}, not bool, so "
                                   "it is not a condition alone (compare it with a value)")

    def _column_type(self, column: _Column) -> pa.DataType | None:
        return None if self.schema is None else self.schema.field(column.name).type

    def _scalar(self, value: Any, column: _Column) -> pa.Scalar:
        try:
            scalar = pa.scalar(value)
        except (OverflowError, pa.ArrowException) as e:
            raise WhereSyntaxError(f"literal {value!r} cannot be used: {e}") from None
        return self._converted(scalar, isinstance(value, str), column)

    def _values(self, node: ast.expr, column: _Column) -> pa.Array:
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            raise WhereSyntaxError(f"`in` needs a tuple, list or set of literals: "
                                   f"{self._quote(node)}")
        values = []
        for element in node.elts:
            operand = self._operand(element)
            if not isinstance(operand, _Literal):
                raise WhereSyntaxError(f"`in` takes literals only, not column "
                                       f"{operand.name!r}")
            if operand.value is None:
                raise WhereSyntaxError(f"None in {self._quote(node)}: test for nulls with "
                                       f"`{column.name} == None`")
            values.append(operand.value)
        try:
            array = pa.array(values)
        except (OverflowError, pa.ArrowException) as e:
            raise WhereSyntaxError(f"the values of {self._quote(node)} cannot be one "
                                   f"list: {e}") from None
        strings = pa.types.is_string(array.type)
        converted: pa.Array = self._converted(array, strings, column)
        return converted

    def _converted(self, literal: Any, is_string: bool, column: _Column) -> Any:
        """``literal`` (a scalar or array) cast to ``column``'s type when it is a
        string and the column is not (dates, timestamps, decimals ...)."""
        column_type = self._column_type(column)
        if column_type is None or not is_string or literal.type == column_type:
            return literal
        try:
            return literal.cast(column_type)
        except (pa.ArrowException, ValueError):
            raise WhereColumnError(f"column {column.name!r} is {column_type}: "
                                   f"{_shown(literal)} does not convert to it") from None

    # -- messages --------------------------------------------------------------------

    def _quote(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.text, node)
        return f"`{segment if segment is not None else ast.unparse(node)}`"

    def _unsupported(self, node: ast.AST, kind: str | None = None) -> WhereSyntaxError:
        kind = kind or _KINDS.get(type(node), type(node).__name__)
        return WhereSyntaxError(f"unsupported {kind}: {self._quote(node)} (allowed: "
                                f"{SUMMARY})")


def _shown(literal: Any) -> str:
    if isinstance(literal, pa.Scalar):
        return repr(literal.as_py())
    return repr(literal.to_pylist())

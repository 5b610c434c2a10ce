"""``coldb export --where``: the expression language of ``colibri_mm.tables.where``,
parsed into ``pyarrow.compute`` expressions and evaluated on real Arrow tables
(against a reference evaluation with SQL's three-valued logic), and every
unsupported form refused with a message naming it."""

import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.tables.where import WhereColumnError, WhereSyntaxError, parse

ROWS = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "x": pa.array([10, None, -3, 7, 0, 10], pa.int32()),
    "y": pa.array([1.5, 2.5, None, -0.5, 0.0, 9.0]),
    "name": pa.array(["ada", "bob", None, "", "o'neil", "ada"]),
    "flag": pa.array([True, False, None, True, False, True]),
    "day": pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3, 4, 5, 6)]),
    "at": pa.array([datetime.datetime(2024, 1, 1, h) for h in (0, 6, 12, 18, 20, 23)],
                   pa.timestamp("us")),
    "blob": pa.array([b"\x00", b"a", None, b"b", b"", b"\x00"]),
    "two words": pa.array([1, 2, 3, 4, 5, 6], pa.int16()),
})


def ids(text: str, *, with_schema: bool = True) -> list[int]:
    """The ids of the rows of ROWS that ``text`` selects."""
    expression = parse(text, ROWS.schema if with_schema else None)
    return ROWS.filter(expression).column("id").to_pylist()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("text", "expected"), [
    ("x > 5", [1, 4, 6]),
    ("x >= 7", [1, 4, 6]),
    ("x < 0", [3]),
    ("x <= 0", [3, 5]),
    ("x == 10", [1, 6]),
    ("x != 10", [3, 4, 5]),  # the null x of row 2 is neither equal nor unequal
    ("5 < x", [1, 4, 6]),  # a literal on the left is mirrored
    ("-3 == x", [3]),
    ("0 <= x < 10", [4, 5]),  # chained as in Python
    ("x > -1.5", [1, 4, 5, 6]),
    ("y > 2", [2, 6]),
    ("y == 0.0", [5]),
    ("x == None", [2]),
    ("x is None", [2]),
    ("None == x", [2]),
    ("x != None", [1, 3, 4, 5, 6]),
    ("x is not None", [1, 3, 4, 5, 6]),
    ("name == 'ada'", [1, 6]),
    ('name == "o\'neil"', [5]),
    ("name == ''", [4]),
    ("name > 'b'", [2, 5]),
    ("flag", [1, 4, 6]),
    ("not flag", [2, 5]),  # not null is null: row 3 is not selected
    ("flag == False", [2, 5]),
    ("x > 0 and y > 1", [1, 6]),
    ("x > 0 or name == 'bob'", [1, 2, 4, 6]),
    ("not (x > 0)", [3, 5]),
    ("not x > 0 and id > 3", [5]),
    ("(x > 0) & (y > 1)", [1, 6]),
    ("(x < 0) | ~(y < 9)", [3, 6]),
    ("x == 10 and (name == 'ada' or flag)", [1, 6]),
    ("x > 0 and y > 1 and name != None and flag", [1, 6]),
    ("x in (0, 7)", [4, 5]),
    ("x in [10]", [1, 6]),
    ("x not in (10, 0)", [3, 4]),  # null x is neither in nor out
    ("name in {'bob', ''}", [2, 4]),
    ("x == y", [5]),  # two columns
    ("id < x", [1, 4, 6]),
    ("day >= '2024-01-05'", [5, 6]),
    ("day == '2024-01-02'", [2]),
    ("day in ('2024-01-01', '2024-01-03')", [1, 3]),
    ("at < '2024-01-01 07:00'", [1, 2]),
    ("blob == b'\\x00'", [1, 6]),
    ("col('two words') > 4", [5, 6]),
    ('col("x") == 10', [1, 6]),
    ("  x == 10  ", [1, 6]),
    ("(\n x == 10\n)", [1, 6]),
    ("x == 1_0", [1, 6]),
    ("x > +5", [1, 4, 6]),
])
def test_selected_rows(text: str, expected: list[int]) -> None:
    assert ids(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("x > 5", [1, 4, 6]),
    ("x == None", [2]),
    ("name == 'ada' and x > 0", [1, 6]),
    ("x in (0, 7)", [4, 5]),
    ("col('two words') >= 6", [6]),
])
def test_without_a_schema_nothing_is_checked_or_converted(text: str,
                                                          expected: list[int]) -> None:
    assert ids(text, with_schema=False) == expected
    assert str(parse("nothing > 1")) == "(nothing > 1)"


def test_expressions_have_the_shape_chunk_statistics_use() -> None:
    # Comparisons of a column with a number joined by `and` are what statistics skip
    # chunks with: column first, literal second, combined with and.
    expression = parse("x > 5 and 3 >= y")
    assert expression.equals((pc.field("x") > 5) & (pc.field("y") <= 3))
    assert parse("x == None").equals(pc.field("x").is_null())
    assert parse("x != None").equals(pc.field("x").is_valid())


@pytest.mark.parametrize(("text", "named"), [
    ("x + 1 > 2", "unsupported arithmetic: `x + 1`"),
    ("-x > 2", "unsupported arithmetic: `-x`"),
    ("len(name) > 1", "unsupported function call: `len(name)`"),
    ("name.upper() == 'A'", "unsupported function call: `name.upper()`"),
    ("name.upper == 'A'", "unsupported attribute access: `name.upper`"),
    ("x[0] == 1", "unsupported subscript: `x[0]`"),
    ("__import__('os').system('true')", "unsupported function call"),
    ("(lambda: 1)() == 1", "unsupported function call"),
    ("x == (1 if flag else 2)", "unsupported conditional expression"),
    ("(x := 3) > 1", "unsupported assignment expression"),
    ("f'{x}' == name", "unsupported f-string"),
    ("x == 1j", "unsupported literal: `1j`"),
    ("x == ...", "unsupported literal: `...`"),
    ("x == [1]", "unsupported list: `[1]`"),
    ("x == {'a': 1}", "unsupported dict"),
    ("x == 2 ** 70", "unsupported arithmetic: `2 ** 70`"),
    ("x in (y for y in z)", "`in` needs a tuple, list or set of literals"),
])
def test_unsupported_forms_are_named(text: str, named: str) -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        parse(text, ROWS.schema)
    assert named in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the expression is empty"),
    ("   ", "the expression is empty"),
    ("x = 1", "invalid syntax at column 3: invalid syntax (compare with ==, not =)"),
    ("x >", "invalid syntax"),
    ("x > 1 AND y < 2", "invalid syntax"),
    ("import os", "invalid syntax"),
    ("1 < 2", "compares two literals: `1` < `2` (one side must be a column)"),
    ("True", "a literal is not a condition: `True`"),
    ("x > 1 and 3", "a literal is not a condition: `3`"),
    ("x < None", "None can only be compared with == or != (or `is` / `is not`), not `<`"),
    ("x is 3", "`is` only tests for None"),
    ("(x > 1) == True", "a comparison cannot be compared again: `x > 1`"),
    ("x > 1 & y < 2", "`&` and `|` bind tighter than comparisons"),
    ("x in name", "`in` needs a tuple, list or set of literals: `name`"),
    ("x in (1, y)", "`in` takes literals only, not column 'y'"),
    ("x in (1, None)", "None in `(1, None)`: test for nulls with `x == None`"),
    ("3 in (1, 2)", "the left side of `in` must be a column: `3`"),
    ("x in (1, 'a')", "cannot be one list"),
    ("x == 100000000000000000000", "literal 100000000000000000000 cannot be used"),
    ("col(x) == 1", "col() takes one string, the column's name"),
    ("col('a', 'b') == 1", "col() takes one string"),
    ("not " * 100_000 + "flag", "nested too deeply"),
    ("(" * 1000 + "flag" + ")" * 1000, "too many nested parentheses"),
])
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        parse(text, ROWS.schema)
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("nope > 1", "no column 'nope' (the columns are id, x, y, name, flag, day, at, blob, "
                 "two words)"),
    ("x > 1 and col('two  words') == 1", "no column 'two  words'"),
    ("x in (1, 2) or z == None", "no column 'z'"),
    ("x", "column 'x' is int32, not bool, so it is not a condition alone"),
    ("day > 'tomorrow'", "column 'day' is date32[day]: 'tomorrow' does not convert to it"),
    ("at in ('2024-01-01', 'noon')", "column 'at' is timestamp[us]: ['2024-01-01', 'noon'] "
                                     "does not convert to it"),
])
def test_column_errors_need_the_schema(text: str, message: str) -> None:
    with pytest.raises(WhereColumnError) as caught:
        parse(text, ROWS.schema)
    assert message in str(caught.value)


# -- against a reference evaluation ---------------------------------------------------

COLUMNS = {"a": [3, None, -1, 0, 7, 3, None, 2], "b": [1, 1, None, 0, 9, -2, None, 5]}
TABLE = pa.table({name: pa.array(values, pa.int64()) for name, values in COLUMNS.items()})
OPERATORS = {"==": lambda p, q: p == q, "!=": lambda p, q: p != q,
             "<": lambda p, q: p < q, "<=": lambda p, q: p <= q,
             ">": lambda p, q: p > q, ">=": lambda p, q: p >= q}


def operands() -> st.SearchStrategy[str]:
    return st.sampled_from(["a", "b"]) | st.integers(-3, 8).map(str)


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    left = draw(st.sampled_from(["a", "b"]))
    kind = draw(st.sampled_from(["compare", "null", "in"]))
    if kind == "null":
        return f"{left} {draw(st.sampled_from(['==', '!=', 'is', 'is not']))} None"
    if kind == "in":
        values = draw(st.lists(st.integers(-3, 8), min_size=1, max_size=3))
        return f"{left} {draw(st.sampled_from(['in', 'not in']))} ({', '.join(map(str, values))},)"
    return f"{left} {draw(st.sampled_from(sorted(OPERATORS)))} {draw(operands())}"


def conditions() -> st.SearchStrategy[str]:
    return st.recursive(
        comparisons(),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or", "&", "|"]), inner).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            inner.map(lambda c: f"not ({c})"),
            inner.map(lambda c: f"~({c})")),
        max_leaves=6)


def reference(text: str, row: dict[str, Any]) -> bool | None:
    """What SQL would say ``text`` is for ``row`` (None: unknown), by evaluating the
    same text with Python over three-valued stand-ins."""
    return _evaluate(_rewrite(text), row)


def _rewrite(text: str) -> str:
    # Three-valued logic through helper functions: the reference needs its own
    # evaluator, so it rewrites the text for Python's eval on trusted input.
    import ast
    tree = ast.parse(text, mode="eval")

    class ToCalls(ast.NodeTransformer):
        def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
            self.generic_visit(node)
            name = "AND" if isinstance(node.op, ast.And) else "OR"
            result = node.values[0]
            for value in node.values[1:]:
                result = ast.Call(ast.Name(name, ast.Load()), [result, value], [])
            return result

        def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
            self.generic_visit(node)
            name = "AND" if isinstance(node.op, ast.BitAnd) else "OR"
            return ast.Call(ast.Name(name, ast.Load()), [node.left, node.right], [])

        def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
            self.generic_visit(node)
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return ast.Call(ast.Name("NOT", ast.Load()), [node.operand], [])
            return node

        def visit_Compare(self, node: ast.Compare) -> ast.AST:
            self.generic_visit(node)
            (op,), (right,) = node.ops, node.comparators
            symbol = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=",
                      ast.Gt: ">", ast.GtE: ">=", ast.Is: "==", ast.IsNot: "!=",
                      ast.In: "in", ast.NotIn: "not in"}[type(op)]
            if isinstance(right, ast.Constant) and right.value is None:
                symbol = "is null" if symbol == "==" else "is not null"
            return ast.Call(ast.Name("CMP", ast.Load()),
                            [node.left, ast.Constant(symbol), right], [])

    return ast.unparse(ast.fix_missing_locations(ToCalls().visit(tree)))


def _evaluate(code: str, row: dict[str, Any]) -> bool | None:
    def cmp(left: Any, symbol: str, right: Any) -> bool | None:
        if symbol in ("in", "not in"):
            if left is None:
                return None
            return (left in right) == (symbol == "in")
        if symbol in ("is null", "is not null"):
            return (left is None) == (symbol == "is null")
        if left is None or right is None:
            return None
        return bool(OPERATORS[symbol](left, right))

    def and_(p: bool | None, q: bool | None) -> bool | None:
        if p is False or q is False:
            return False
        return None if p is None or q is None else True

    def or_(p: bool | None, q: bool | None) -> bool | None:
        if p is True or q is True:
            return True
        return None if p is None or q is None else False

    def not_(p: bool | None) -> bool | None:
        return None if p is None else not p

    names = {"CMP": cmp, "AND": and_, "OR": or_, "NOT": not_, **row}
    return eval(code, {"__builtins__": {}}, names)  # type: ignore[no-any-return]


@given(conditions())
def test_matches_three_valued_logic(text: str) -> None:
    expected = [i for i, row in enumerate(TABLE.to_pylist()) if reference(text, row) is True]
    numbered = TABLE.append_column("i", pa.array(range(TABLE.num_rows)))
    assert numbered.filter(parse(text, TABLE.schema)).column("i").to_pylist() == expected


def test_the_reference_can_tell() -> None:
    # The reference distinguishes what the parser must get right: unknown is not true,
    # and `not` of unknown stays unknown.
    row = {"a": None, "b": 1}
    assert reference("a > 1", row) is None
    assert reference("not (a > 1)", row) is None
    assert reference("(a > 1) or (b == 1)", row) is True
    assert reference("(a > 1) and (b == 2)", row) is False
    assert reference("a not in (1,)", row) is None
    assert reference("a is None", row) is True
    assert reference("a != a", row) is None
    assert reference("b != None", row) is True

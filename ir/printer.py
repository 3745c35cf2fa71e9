"""How the IR prints: expressions in two notations, statements and PrimFuncs as C-like loops.

* ``PRINTER`` is this repository's notation, what ``str()`` gives: infix expressions whose
  parentheses come from one precedence table (``(a + b) * c``, ``A[i, k] * B[k, j] + 1.0f``,
  ``a // 4 % 3``), and the lowered IR as nested loops (``for (i, 0, 16) { ... }``).
* ``LEGACY_PRINTER`` is TVM's legacy expression text: every binary operation in
  parentheses (``((a + b)*c)``), ``floordiv(a, b)``, ``tir.exp(x)``,
  ``tir.if_then_else(c, t, f)``, ``0f``, ``(int64)1``. ``ComputeDAG`` prints its compute
  ops in it and hashes that text into the workload key, which names the workload in every
  tuning record (TVM's ``ComputeDAG::PrintDAG``), so its output must never change.

A notation is a ``Printer`` class with one rule per node class: ``print_<Node>`` for an
expression, ``lines_<Node>`` for a statement; the legacy notation is a subclass that
overrides the expression rules it writes differently. Rules are found by the node's class
name (as ``ast.NodeVisitor`` finds ``visit_<Node>``), not by a table keyed on the classes,
because this module sits below the node modules: ``Expr.__str__`` and ``Stmt.__str__`` call
it, so it cannot import ``ir.expr`` or ``ir.tir`` at run time. A node class derived from
another (``IterVar`` from ``Var``) has its rule named explicitly. Operators are looked up
by their spelling (``BinaryOp.ADD.value == "+"``), which the enums define to be the
printed text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ir import dtype as dt

if TYPE_CHECKING:
    from ir.expr import Binary, Call, Cast, Compare, Const, Expr, Not, Reduce, Select, TensorRead, Var
    from ir.tir import (
        Allocate,
        Barrier,
        BufferLoad,
        BufferStore,
        For,
        IfThenElse,
        LetStmt,
        PrimFunc,
        SeqStmt,
        Stmt,
    )

#: binding strength of infix operators, by spelling; higher binds tighter
PRECEDENCE: dict[str, int] = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "//": 6,
    "%": 6,
}
#: precedence of a node printed as a name or a call: never parenthesised
ATOM = 10
#: precedence of ``select(...)``: parenthesised as an operand (kept for stable text)
SELECT_PRECEDENCE = 0
#: binary operators printed as calls, ``max(a, b)``
FUNCTION_STYLE = frozenset({"max", "min"})


def format_const(c: Const) -> str:
    """``True``, ``1.5f`` (float32), ``7i64`` (int64), or the Python repr of the value."""
    if c.dtype == "bool":
        return "True" if c.value else "False"
    if c.dtype == "float32":
        return f"{c.value!r}f"
    if c.dtype == "int64":
        return f"{c.value}i64"
    return repr(c.value)


class Printer:
    """This repository's notation (see the module docstring)."""

    # dispatch ---------------------------------------------------------------------------
    def expr(self, e: Expr) -> str:
        """``e`` as text."""
        rule: Callable[[Any], str] | None = getattr(self, "print_" + type(e).__name__, None)
        if rule is None:
            raise TypeError(f"{type(self).__name__} has no rule for expression node {type(e).__name__}")
        return rule(e)

    def stmt_lines(self, s: Stmt, depth: int) -> list[str]:
        """``s`` as lines indented by ``depth`` levels of two spaces."""
        rule: Callable[[Any, int], list[str]] | None = getattr(self, "lines_" + type(s).__name__, None)
        if rule is None:
            raise TypeError(f"{type(self).__name__} has no rule for statement {type(s).__name__}")
        return rule(s, depth)

    def primfunc(self, func: PrimFunc) -> str:
        """``void name(float32 A[16, 8], ...) { body }``."""
        params = ", ".join(f"{b.dtype} {b.name}[{', '.join(map(str, b.shape))}]" for b in func.params)
        return "\n".join([f"void {func.name}({params}) {{", *self.stmt_lines(func.body, 1), "}"])

    # expressions ------------------------------------------------------------------------
    def print_Const(self, e: Const) -> str:
        return format_const(e)

    def print_Var(self, e: Var) -> str:
        return e.name

    print_IterVar = print_Var

    def print_Binary(self, e: Binary) -> str:
        return self.infix(e)

    def print_Compare(self, e: Compare) -> str:
        return self.infix(e)

    def print_Not(self, e: Not) -> str:
        return f"!{self.operand(e.a, ATOM, True)}"

    def print_Select(self, e: Select) -> str:
        return f"select({self.expr(e.cond)}, {self.expr(e.true_value)}, {self.expr(e.false_value)})"

    def print_Cast(self, e: Cast) -> str:
        return f"{e.dtype}({self.expr(e.value)})"

    def print_Call(self, e: Call) -> str:
        return f"{e.intrinsic.value}({self.exprs(e.args)})"

    def print_TensorRead(self, e: TensorRead) -> str:
        return f"{e.tensor.name}[{self.exprs(e.indices)}]"

    def print_BufferLoad(self, e: BufferLoad) -> str:
        return f"{e.buffer.name}[{self.exprs(e.indices)}]"

    def print_Reduce(self, e: Reduce) -> str:
        axes = ", ".join(a.name for a in e.axis)
        where = "" if e.condition is None else f", where={self.expr(e.condition)}"
        return f"{e.reducer.name}({self.expr(e.source)}, axis=[{axes}]{where})"

    def exprs(self, items: tuple[Expr, ...]) -> str:
        return ", ".join(self.expr(i) for i in items)

    def infix(self, e: Binary | Compare) -> str:
        """``a + b``, ``a < b``; ``max(a, b)`` for the operators written as calls."""
        spelling = e.op.value
        if spelling in FUNCTION_STYLE:
            return f"{spelling}({self.expr(e.a)}, {self.expr(e.b)})"
        strength = PRECEDENCE[spelling]
        return f"{self.operand(e.a, strength, False)} {spelling} {self.operand(e.b, strength, True)}"

    def operand(self, e: Expr, parent: int, right: bool) -> str:
        """``e`` as an operand of an operator binding with ``parent``: parenthesised when
        it binds looser, or equally on the right (``a - (b - c)``)."""
        text = self.expr(e)
        strength = self.precedence(e)
        if strength < parent or (right and strength == parent):
            return f"({text})"
        return text

    @staticmethod
    def precedence(e: Expr) -> int:
        kind = type(e).__name__
        if kind == "Binary" or kind == "Compare":
            spelling = e.op.value  # type: ignore[attr-defined]
            return ATOM if spelling in FUNCTION_STYLE else PRECEDENCE[spelling]
        return SELECT_PRECEDENCE if kind == "Select" else ATOM

    # statements -------------------------------------------------------------------------
    def lines_For(self, s: For, depth: int) -> list[str]:
        pad = "  " * depth
        head = f"bind {s.thread_tag}" if s.kind.value == "bind" else s.kind.value
        pragmas = "".join(f" // {k}={v}" for k, v in sorted(s.annotations.items()))
        first = f"{pad}{head} ({s.loop_var.name}, {self.extent(s.min)}, {self.extent(s.extent)}) {{{pragmas}"
        return [first, *self.stmt_lines(s.body, depth + 1), f"{pad}}}"]

    def extent(self, e: Expr) -> str:
        """A loop bound: a constant without its dtype suffix (``16``, not ``16i64``)."""
        return str(e.value) if type(e).__name__ == "Const" else self.expr(e)  # type: ignore[attr-defined]

    def lines_BufferStore(self, s: BufferStore, depth: int) -> list[str]:
        return [f"{'  ' * depth}{s.buffer.name}[{self.exprs(s.indices)}] = {self.expr(s.value)}"]

    def lines_Allocate(self, s: Allocate, depth: int) -> list[str]:
        b = s.buffer
        head = f"{'  ' * depth}allocate {b.name}[{b.dtype} * {b.num_elements}] {b.scope.value}"
        return [head, *self.stmt_lines(s.body, depth)]

    def lines_IfThenElse(self, s: IfThenElse, depth: int) -> list[str]:
        pad = "  " * depth
        lines = [f"{pad}if ({self.expr(s.condition)}) {{", *self.stmt_lines(s.then_case, depth + 1)]
        if s.else_case is not None:
            lines += [f"{pad}}} else {{", *self.stmt_lines(s.else_case, depth + 1)]
        return [*lines, f"{pad}}}"]

    def lines_LetStmt(self, s: LetStmt, depth: int) -> list[str]:
        let = f"{'  ' * depth}{s.var.dtype} {s.var.name} = {self.expr(s.value)}"
        return [let, *self.stmt_lines(s.body, depth)]

    def lines_SeqStmt(self, s: SeqStmt, depth: int) -> list[str]:
        return [line for child in s.stmts for line in self.stmt_lines(child, depth)]

    def lines_Barrier(self, s: Barrier, depth: int) -> list[str]:
        return [f"{'  ' * depth}barrier({s.scope.value})"]


class LegacyPrinter(Printer):
    """TVM's legacy expression text (``ComputeDAG`` and the workload key; see the module
    docstring). Statements print as in ``Printer``."""

    #: binary operators printed infix with spaces, ``(a + b)``; the others without, ``(a*b)``
    SPACED = frozenset({"+", "-", "&&", "||"})
    #: binary operators printed as calls
    CALLS = {"//": "floordiv", "%": "floormod", "max": "max", "min": "min"}
    #: suffix of float constants by dtype (float64 has none)
    FLOAT_SUFFIX = {"float32": "f", "float16": "h"}

    def print_Const(self, e: Const) -> str:
        if dt.is_float(e.dtype):
            return _format_float(float(e.value)) + self.FLOAT_SUFFIX.get(e.dtype, "")
        if e.dtype == "int32":
            return str(e.value)
        return f"({e.dtype}){int(e.value)}"

    def print_Binary(self, e: Binary) -> str:
        a, b, spelling = self.expr(e.a), self.expr(e.b), e.op.value
        if spelling in self.CALLS:
            return f"{self.CALLS[spelling]}({a}, {b})"
        return f"({a} {spelling} {b})" if spelling in self.SPACED else f"({a}{spelling}{b})"

    def print_Compare(self, e: Compare) -> str:
        return f"({self.expr(e.a)} {e.op.value} {self.expr(e.b)})"

    def print_Not(self, e: Not) -> str:
        return f"!{self.expr(e.a)}"

    def print_Select(self, e: Select) -> str:
        return f"tir.if_then_else({self.exprs((e.cond, e.true_value, e.false_value))})"

    def print_Call(self, e: Call) -> str:
        return f"tir.{e.intrinsic.value}({self.exprs(e.args)})"

    def print_Reduce(self, e: Reduce) -> str:
        return f"reduce({e.reducer.name}, {self.expr(e.source)})"


def _format_float(value: float) -> str:
    """C++ ``ostream`` default format (``%g``), or the exact repr when %g would lose digits."""
    text = f"{value:g}"
    return text if float(text) == value or math.isnan(value) else repr(value)


PRINTER = Printer()
LEGACY_PRINTER = LegacyPrinter()

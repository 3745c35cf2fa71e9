"""The two expression notations of ``ir.printer`` and the statement printer, pinned.

``PRINTER`` (what ``str()`` gives) decides parentheses by precedence; ``LEGACY_PRINTER``
writes TVM's legacy text, which the workload key hashes (``tests/ir/test_compute_dag.py``
pins whole DAGs), so these strings must not change."""

from __future__ import annotations

import pytest

from ir import te
from ir.expr import Reduce, Var, call, cast, const, max_expr, select
from ir.printer import LEGACY_PRINTER, PRINTER
from ir.tir import (
    Allocate,
    Barrier,
    Buffer,
    BufferLoad,
    BufferStore,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    MemoryScope,
    seq,
)

a, b, c = Var("a"), Var("b"), Var("c")
x = Var("x", "float32")
A = te.placeholder((4, 4), name="A")
k = te.reduce_axis((0, 4), name="k")

# (expression, this repository's notation, TVM's legacy notation)
CASES = [
    ((a + b) * c, "(a + b) * c", "((a + b)*c)"),
    (a - (b - c), "a - (b - c)", "(a - (b - c))"),
    (a - b - c, "a - b - c", "((a - b) - c)"),
    (~(a < b), "!(a < b)", "!(a < b)"),
    (max_expr(a, b) + 1, "max(a, b) + 1", "(max(a, b) + 1)"),
    (select(a < b, x, x * 2.0), "select(a < b, x, x * 2.0f)", "tir.if_then_else((a < b), x, (x*2f))"),
    (cast("float32", a) + x, "float32(a) + x", "(float32(a) + x)"),
    (call("exp", x), "exp(x)", "tir.exp(x)"),
    (
        Reduce(te.SUM, A[a, k] * 2.0, (k,), k < 3),
        "sum(A[a, k] * 2.0f, axis=[k], where=k < 3)",
        "reduce(sum, (A[a, k]*2f))",
    ),
    (const(1, "int64") + cast("int64", a), "1i64 + int64(a)", "((int64)1 + int64(a))"),
    ((a // 4) % 3, "a // 4 % 3", "floormod(floordiv(a, 4), 3)"),
    ((a < b) & (b < c) | (c < a), "a < b && b < c || c < a", "(((a < b) && (b < c)) || (c < a))"),
    (x * 1e-7, "x * 1e-07f", "(x*1e-07f)"),
    (x + 123456789.0, "x + 123456789.0f", "(x + 123456789.0f)"),
    (const(2.5, "float64") + cast("float64", x), "2.5 + float64(x)", "(2.5 + float64(x))"),
    (const(1.0, "float16"), "1.0", "1h"),
    (const(True), "True", "(bool)1"),
]


@pytest.mark.parametrize(("e", "text", "legacy"), CASES, ids=[case[1] for case in CASES])
def test_both_notations(e, text, legacy):
    assert str(e) == PRINTER.expr(e) == text
    assert LEGACY_PRINTER.expr(e) == legacy


def test_statements_print_as_nested_loops():
    B = Buffer("B", (4,), "float32")
    i, t = Var("i"), Var("t")
    body = seq(
        LetStmt(t, i * 2, BufferStore(B, BufferLoad(B, (i,)) + 1.0, (i,))),
        IfThenElse(i < 2, Barrier(), BufferStore(B, const(0.0), (i,))),
    )
    loop = For(i, const(0), const(4), ForKind.PARALLEL, body, annotations={"pragma_auto_unroll_max_step": 16})
    assert str(loop) == (
        "parallel (i, 0, 4) { // pragma_auto_unroll_max_step=16\n"
        "  int32 t = i * 2\n"
        "  B[i] = B[i] + 1.0f\n"
        "  if (i < 2) {\n"
        "    barrier(shared)\n"
        "  } else {\n"
        "    B[i] = 0.0f\n"
        "  }\n"
        "}"
    )
    j = Var("j")
    bound = For(j, const(0), const(2, "int64"), ForKind.THREAD_BINDING, Barrier(), thread_tag="threadIdx.x")
    local = Buffer("L", (2,), "float32", MemoryScope.LOCAL)
    assert str(Allocate(local, bound)) == (
        "allocate L[float32 * 2] local\nbind threadIdx.x (j, 0, 2) {\n  barrier(shared)\n}"
    )


def test_an_unknown_node_is_a_type_error_naming_it():
    class Mystery:
        pass

    with pytest.raises(TypeError, match="Printer has no rule for expression node Mystery"):
        PRINTER.expr(Mystery())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LegacyPrinter has no rule for expression node Mystery"):
        LEGACY_PRINTER.expr(Mystery())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no rule for statement Mystery"):
        PRINTER.stmt_lines(Mystery(), 0)  # type: ignore[arg-type]

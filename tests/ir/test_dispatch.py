"""Every pass over the IR dispatches on the node's class through a table of rules; a node
kind without a rule is refused with an error naming it, never skipped."""

from __future__ import annotations

import pytest

from ir import te
from ir.compute_dag import estimate_flop
from ir.expr import Var, const
from ir.lower.interpreter import InterpreterError, run
from ir.lower.passes import map_stmt, simplify_stmt
from ir.lower.simplify import simplify
from ir.tir import Buffer, BufferLoad, BufferStore, PrimFunc, Stmt, stmt_children, stmt_exprs


class Mystery(Stmt):
    """A statement kind no pass knows."""


def test_interpreter_refuses_an_unknown_statement():
    with pytest.raises(InterpreterError, match="cannot interpret statement Mystery"):
        run(PrimFunc("f", (), Mystery()), [])


def test_statement_rebuilding_refuses_an_unknown_statement():
    with pytest.raises(TypeError, match="no rule for statement Mystery"):
        map_stmt(Mystery(), lambda s: s, lambda e: e)
    with pytest.raises(TypeError, match="no rule for statement Mystery"):
        simplify_stmt(Mystery())


def test_flop_estimate_refuses_a_node_of_the_loop_ir():
    B = Buffer("B", (4,), "float32")
    C = te.compute((4,), lambda i: BufferLoad(B, (i,)) * 2.0, name="C")
    with pytest.raises(TypeError, match="no FLOP rule for expression node BufferLoad"):
        estimate_flop([C.op])


def test_statement_fields_list_children_and_expressions_in_order():
    B = Buffer("B", (4,), "float32")
    i = Var("i")
    store = BufferStore(B, const(1.0), (i,))
    assert list(stmt_children(store)) == [] and list(stmt_exprs(store))[1] is i
    assert list(stmt_children(Mystery())) == [] and list(stmt_exprs(Mystery())) == []


def test_simplifier_keeps_a_node_it_has_no_rule_for_as_an_atom():
    B = Buffer("B", (4,), "int32")
    load = BufferLoad(B, (Var("i") + 0,))
    assert str(simplify(load + 0)) == "B[i]"

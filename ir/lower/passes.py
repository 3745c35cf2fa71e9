"""Statement passes run after the loop nests are written: flatten, simplify, hoist.

Each pass takes a statement and returns a new one (the IR is immutable):

* ``flatten_indices``: one index per access, ``sum(index_d * stride_d)`` from the
  buffer's strides (storage_align padding included);
* ``simplify_stmt``: every index and condition simplified under the ranges of the loops
  around it (``simplify.py``); guards proven true vanish, guards proven false drop their
  body, loops left empty disappear;
* ``hoist_invariant_indices``: strength reduction. An index ``base + c*v`` whose ``v`` is
  the innermost loop it reads gets its loop-invariant ``base`` computed once, in a
  ``LetStmt`` just inside the deepest loop ``base`` reads, so the inner loop carries
  ``name + c*v`` (what a vectorizer wants to see).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ir.expr import Const, Expr, Var, const, free_vars, map_children, structural_key
from ir.lower.simplify import Linear, Simplifier, linear_to_expr
from ir.tir import (
    Allocate,
    Barrier,
    BufferLoad,
    BufferStore,
    For,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
    seq,
)

EMPTY = SeqStmt(())


# ------------------------------------------------------------------------------------------
# generic rebuilding


def map_expr(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Apply ``fn`` bottom-up to every node of ``e``."""
    return fn(map_children(e, lambda c: map_expr(c, fn)))


StmtFn = Callable[[Stmt], Stmt]
ExprFn = Callable[[Expr], Expr]


def map_stmt(s: Stmt, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    """Rebuild ``s`` with ``fstmt`` on its child statements and ``fexpr`` on the
    expressions it holds directly."""
    rule = _MAP_RULES.get(type(s))
    if rule is None:
        raise TypeError(f"no rule for statement {type(s).__name__}")
    return rule(s, fstmt, fexpr)


def _map_for(s: For, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return dataclasses.replace(s, min=fexpr(s.min), extent=fexpr(s.extent), body=fstmt(s.body))


def _map_store(s: BufferStore, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return BufferStore(s.buffer, fexpr(s.value), tuple(fexpr(i) for i in s.indices))


def _map_allocate(s: Allocate, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return Allocate(s.buffer, fstmt(s.body))


def _map_if(s: IfThenElse, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    other = None if s.else_case is None else fstmt(s.else_case)
    return IfThenElse(fexpr(s.condition), fstmt(s.then_case), other)


def _map_let(s: LetStmt, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return LetStmt(s.var, fexpr(s.value), fstmt(s.body))


def _map_seq(s: SeqStmt, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return seq(*(fstmt(c) for c in s.stmts))


def _map_barrier(s: Barrier, fstmt: StmtFn, fexpr: ExprFn) -> Stmt:
    return s


_MAP_RULES: dict[type, Callable[[Any, StmtFn, ExprFn], Stmt]] = {
    For: _map_for,
    BufferStore: _map_store,
    Allocate: _map_allocate,
    IfThenElse: _map_if,
    LetStmt: _map_let,
    SeqStmt: _map_seq,
    Barrier: _map_barrier,
}


def is_empty(s: Stmt) -> bool:
    return isinstance(s, SeqStmt) and not s.stmts


# ------------------------------------------------------------------------------------------
# flatten


def flatten_indices(s: Stmt) -> Stmt:
    """Every BufferStore/BufferLoad indexed by one flat element offset."""

    def flat_expr(e: Expr) -> Expr:
        def fn(node: Expr) -> Expr:
            if isinstance(node, BufferLoad):
                return BufferLoad(node.buffer, (_flat(node.buffer.strides, node.indices),))
            return node

        return map_expr(e, fn)

    def visit(node: Stmt) -> Stmt:
        if isinstance(node, BufferStore):
            value = flat_expr(node.value)
            indices = tuple(flat_expr(i) for i in node.indices)
            return BufferStore(node.buffer, value, (_flat(node.buffer.strides, indices),))
        return map_stmt(node, visit, flat_expr)

    return visit(s)


def _flat(strides: tuple[int, ...], indices: tuple[Expr, ...]) -> Expr:
    if len(indices) != len(strides):
        raise ValueError(f"{len(indices)} index(es) for a buffer with {len(strides)} dimension(s)")
    if not indices:
        return const(0, "int32")
    total: Expr | None = None
    for index, stride in zip(indices, strides, strict=True):
        term = index if stride == 1 else index * stride
        total = term if total is None else total + term
    assert total is not None
    return total


# ------------------------------------------------------------------------------------------
# simplify


def simplify_stmt(s: Stmt, ranges: dict[Var, tuple[int, int]] | None = None) -> Stmt:
    """Simplify every expression under the ranges of its enclosing loops."""
    return _simplify(s, Simplifier(ranges))


def _simplify(s: Stmt, simp: Simplifier) -> Stmt:
    rule = _SIMPLIFY_RULES.get(type(s))
    if rule is None:  # stores, sequences, barriers: simplify what they hold
        return map_stmt(s, lambda c: _simplify(c, simp), simp.simplify)
    return rule(s, simp)


def _simplify_for(s: For, simp: Simplifier) -> Stmt:
    extent = simp.simplify(s.extent)
    low = simp.simplify(s.min)
    inner = simp
    if isinstance(extent, Const) and isinstance(low, Const):
        inner = Simplifier({**simp.ranges, s.loop_var: (int(low.value), int(extent.value))})
    body = _simplify(s.body, inner)
    if is_empty(body):
        return EMPTY
    return dataclasses.replace(s, min=low, extent=extent, body=body)


def _simplify_let(s: LetStmt, simp: Simplifier) -> Stmt:
    value = simp.simplify(s.value)
    lo, hi = simp.bounds(value)
    inner = simp
    if lo != -float("inf") and hi != float("inf"):
        inner = Simplifier({**simp.ranges, s.var: (int(lo), int(hi - lo) + 1)})
    return LetStmt(s.var, value, _simplify(s.body, inner))


def _simplify_if(s: IfThenElse, simp: Simplifier) -> Stmt:
    cond = simp.simplify(s.condition)
    if isinstance(cond, Const):
        if cond.value:
            return _simplify(s.then_case, simp)
        return EMPTY if s.else_case is None else _simplify(s.else_case, simp)
    then_case = _simplify(s.then_case, simp)
    else_case = None if s.else_case is None else _simplify(s.else_case, simp)
    if is_empty(then_case) and (else_case is None or is_empty(else_case)):
        return EMPTY
    return IfThenElse(cond, then_case, else_case)


def _simplify_allocate(s: Allocate, simp: Simplifier) -> Stmt:
    body = _simplify(s.body, simp)
    return EMPTY if is_empty(body) else Allocate(s.buffer, body)


_SIMPLIFY_RULES: dict[type, Callable[[Any, Simplifier], Stmt]] = {
    For: _simplify_for,
    LetStmt: _simplify_let,
    IfThenElse: _simplify_if,
    Allocate: _simplify_allocate,
}


# ------------------------------------------------------------------------------------------
# hoist loop-invariant index arithmetic


def hoist_invariant_indices(s: Stmt) -> Stmt:
    """Compute the loop-invariant part of each affine index once (see module docstring)."""
    return _Hoister().run(s)


class _Hoister:
    def __init__(self) -> None:
        #: loop var id -> depth (0 = outermost)
        self.depth: dict[int, int] = {}
        self.loops: list[Var] = []
        #: loop depth -> {structural key: (let var, value)} to bind just inside that loop
        self.pending: dict[int, dict[tuple[object, ...], tuple[Var, Expr]]] = {}
        self.names: set[str] = set()

    def run(self, s: Stmt) -> Stmt:
        return self.visit(s)

    def visit(self, s: Stmt) -> Stmt:
        if isinstance(s, For):
            d = len(self.loops)
            self.depth[id(s.loop_var)] = d
            self.loops.append(s.loop_var)
            body = self.visit(s.body)
            self.loops.pop()
            for var, value in reversed(list(self.pending.pop(d, {}).values())):
                body = LetStmt(var, value, body)
            return dataclasses.replace(s, body=body)
        if isinstance(s, BufferStore):
            value = self.exprs(s.value)
            return BufferStore(s.buffer, value, tuple(self.index(i, s.buffer.name) for i in s.indices))
        return map_stmt(s, self.visit, lambda e: e)

    def exprs(self, e: Expr) -> Expr:
        def fn(node: Expr) -> Expr:
            if isinstance(node, BufferLoad):
                return BufferLoad(node.buffer, tuple(self.index(i, node.buffer.name) for i in node.indices))
            return node

        return map_expr(e, fn)

    def index(self, e: Expr, buffer_name: str) -> Expr:
        e = self.exprs(e)
        if not e.dtype.startswith("int"):
            return e
        lin = Simplifier().linear(e)
        term_depth = {key: self._atom_depth(atom) for key, (atom, _) in lin.terms.items()}
        if not term_depth:
            return e
        deepest = max(term_depth.values())
        base = Linear(lin.dtype, {}, lin.const)
        inner = Linear(lin.dtype, {}, 0)
        for key, (atom, coef) in lin.terms.items():
            target = inner if term_depth[key] == deepest else base
            target.terms[key] = (atom, coef)
        if not base.terms or deepest < 0:
            return e
        if len(base.terms) == 1 and base.const == 0 and next(iter(base.terms.values()))[1] == 1:
            return e  # a lone variable: nothing to save
        at = max(term_depth[key] for key in base.terms)
        if at < 0:
            return e
        base_expr = linear_to_expr(base)
        table = self.pending.setdefault(at, {})
        key = (buffer_name, *structural_key(base_expr))
        if key not in table:
            table[key] = (Var(self._name(f"{buffer_name}_base"), lin.dtype), base_expr)
        var = table[key][0]
        return linear_to_expr(Linear.of_atom(var).add(inner))

    def _atom_depth(self, atom: Expr) -> int:
        return max((self.depth.get(id(v), -1) for v in free_vars(atom) if id(v) in self.depth), default=-1)

    def _name(self, stem: str) -> str:
        name, n = stem, 0
        while name in self.names:
            n += 1
            name = f"{stem}{n}"
        self.names.add(name)
        return name

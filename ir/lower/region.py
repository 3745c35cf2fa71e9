"""Symbolic interval analysis: which values an index expression takes inside a loop nest.

Bound inference (Ansor paper section 4.1, TVM's InferBound) asks, for a stage attached at
a loop, which elements of it a consumer reads during one iteration of the loops *outside*
the attach point. Inside, loop variables are *relaxed* over their ranges; outside, they
are *fixed* (symbolic). The answer is a ``SymRange``: a minimum that is an expression of
the fixed variables only, and a constant extent.

For an affine index ``sum c_v * v + k`` that is exact: the fixed terms form the minimum and
each relaxed ``v`` in [0, e) adds ``|c_v| * (e - 1)`` to the width. Non-affine atoms
(``x // c``, ``x % c``) are bounded recursively; anything else falls back to numeric bounds
over every loop (a constant range, always safe, maybe larger than needed). When a
minimum cannot be expressed, the caller takes the whole domain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ir.expr import Binary, BinaryOp, Const, Expr, Var, const, free_vars
from ir.lower.simplify import Linear, Simplifier, linear_to_expr


@dataclass(frozen=True)
class SymRange:
    """``[min, min + extent)``: ``min`` an expression of the loops outside an attach point
    (a Const for root stages), ``extent`` a constant."""

    min: Expr
    extent: int

    def __str__(self) -> str:
        return f"[{self.min}, +{self.extent})"


def sym_interval(e: Expr, relaxed: Mapping[Var, tuple[int, int]], simp: Simplifier) -> SymRange | None:
    """The values of integer ``e`` while the ``relaxed`` variables range over (min, extent)
    and every other variable stays fixed; None when unbounded (e.g. data-dependent)."""
    return sym_interval_linear(simp.linear(e), relaxed, simp)


def sym_interval_linear(
    lin: Linear, relaxed: Mapping[Var, tuple[int, int]], simp: Simplifier
) -> SymRange | None:
    """``sym_interval`` of the expression whose linear form (``simp.linear``) is ``lin``."""
    low = Linear.of_const(lin.const, lin.dtype)
    width = 0
    for key, (atom, coef) in lin.terms.items():
        if not _depends_on(atom, relaxed):
            low = low.add(Linear.of_atom(atom, coef, key))
            continue
        if isinstance(atom, Var):
            atom_range: SymRange | None = SymRange(const(relaxed[atom][0], atom.dtype), relaxed[atom][1])
        else:
            atom_range = _atom_interval(atom, relaxed, simp)
        if atom_range is None:
            return None
        atom_low = simp.linear(atom_range.min)
        if coef > 0:
            low = low.add(atom_low, coef)
        else:
            low = low.add(atom_low.add(Linear.of_const(atom_range.extent - 1, lin.dtype)), coef)
        width += abs(coef) * (atom_range.extent - 1)
    return SymRange(linear_to_expr(low), width + 1)


def _depends_on(e: Expr, relaxed: Mapping[Var, tuple[int, int]]) -> bool:
    if isinstance(e, Var):
        return e in relaxed
    return any(v in relaxed for v in free_vars(e))


def _atom_interval(atom: Expr, relaxed: Mapping[Var, tuple[int, int]], simp: Simplifier) -> SymRange | None:
    if isinstance(atom, Binary) and isinstance(atom.b, Const) and atom.b.value > 0:
        c = int(atom.b.value)
        inner = sym_interval(atom.a, relaxed, simp)
        if inner is None:
            return None
        first = simp.simplify(Binary(BinaryOp.FLOORDIV, inner.min, const(c, atom.dtype)))
        last = simp.simplify(Binary(BinaryOp.FLOORDIV, inner.min + (inner.extent - 1), const(c, atom.dtype)))
        blocks = simp.simplify(last - first)
        if atom.op is BinaryOp.FLOORDIV:
            if isinstance(blocks, Const):
                return SymRange(first, int(blocks.value) + 1)
            # floor((b + w - 1) / c) - floor(b / c) <= ceil((w - 1) / c) for any b
            return SymRange(first, math.ceil((inner.extent - 1) / c) + 1)
        if atom.op is BinaryOp.FLOORMOD:
            if isinstance(blocks, Const) and blocks.value == 0:
                return SymRange(
                    simp.simplify(Binary(BinaryOp.FLOORMOD, inner.min, const(c, atom.dtype))), inner.extent
                )
            return SymRange(const(0, atom.dtype), c)
    return numeric_interval(atom, simp)


def numeric_interval(e: Expr, simp: Simplifier) -> SymRange | None:
    """A constant range from the numeric bounds of ``e`` over every variable's range."""
    lo, hi = simp.bounds(e)
    if math.isinf(lo) or math.isinf(hi):
        return None
    return SymRange(const(int(lo), e.dtype), int(hi - lo) + 1)


def union(a: SymRange, b: SymRange, simp: Simplifier) -> SymRange | None:
    """The smallest SymRange holding both; exact when the minima differ by a constant."""
    offset = simp.simplify(b.min - a.min)
    if isinstance(offset, Const):
        d = int(offset.value)
        if d >= 0:
            return SymRange(a.min, max(a.extent, d + b.extent))
        return SymRange(b.min, max(b.extent, a.extent - d))
    a_lo, a_hi = simp.bounds(a.min)
    b_lo, b_hi = simp.bounds(b.min)
    lo, hi = min(a_lo, b_lo), max(a_hi + a.extent - 1, b_hi + b.extent - 1)
    if math.isinf(lo) or math.isinf(hi):
        return None
    return SymRange(const(int(lo), a.min.dtype), int(hi - lo) + 1)

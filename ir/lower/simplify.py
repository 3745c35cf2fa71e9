"""A rule-based arithmetic simplifier for index expressions and loop guards.

Lowering produces indices such as ``(i.0*32 + i.1) // 32`` and guards such as
``i.0*4 + i.1 < 16``. With the loop ranges known (a *range map* ``var -> (min, extent)``)
most of them simplify: the first is ``i.0`` when ``0 <= i.1 < 32``, the second is always
true when the split divides. This module does that, in the style of TVM's ``arith``
canonical simplifier, small:

* integer expressions are put in a canonical *linear form* ``sum_k c_k * t_k + c0``, where
  each term ``t_k`` is a variable or a non-linear *atom* (``x // 8``, ``max(a, b)``, ...);
  ``linear_to_expr`` prints it back in first-seen term order (``i.0*32 + i.1``);
* ``x // c`` and ``x % c`` by positive constants split ``x = c*q + r`` and use the range
  of ``r`` to remove the division (``(i.0*32 + i.1) // 32 == i.0``, ``% 32 == i.1``), also
  through a common factor g of c (``(f.0*8 + f.1) // 32 == f.0 // 4`` when f.1 < 8);
* ``min``/``max`` and comparisons are decided when the range of ``a - b`` proves them;
* constants fold everywhere; ``&&``, ``||``, ``!`` and ``select`` with constant conditions
  collapse. Floating-point arithmetic is only constant-folded, never reassociated.

``bounds(e, ranges)`` gives a conservative integer interval ``(lo, hi)`` (inclusive,
``math.inf`` when unknown); it is the proof engine of every rule above.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ir import dtype as dt
from ir.expr import (
    BINARY_FUNCTIONS,
    COMPARE_FUNCTIONS,
    Binary,
    BinaryOp,
    Cast,
    Compare,
    CompareOp,
    Const,
    Expr,
    IterVar,
    Not,
    Select,
    Var,
    cast,
    const,
    map_children,
    structural_key,
)

#: var -> (min, extent) of the values it takes
RangeMap = Mapping[Var, tuple[int, int]]
Interval = tuple[float, float]
UNBOUNDED: Interval = (-math.inf, math.inf)


# ------------------------------------------------------------------------------------------
# linear form


@dataclass
class Linear:
    """``sum(coef * atom) + const`` over integer atoms; terms keep first-seen order."""

    dtype: str
    terms: dict[tuple[object, ...], tuple[Expr, int]] = field(default_factory=dict)
    const: int = 0

    @staticmethod
    def of_const(value: int, dtype: str) -> Linear:
        return Linear(dtype, {}, value)

    @staticmethod
    def of_atom(atom: Expr, coef: int = 1, key: tuple[object, ...] | None = None) -> Linear:
        """``coef * atom``; ``key`` is ``structural_key(atom)`` when the caller knows it."""
        return Linear(atom.dtype, {structural_key(atom) if key is None else key: (atom, coef)}, 0)

    def is_const(self) -> bool:
        return not self.terms

    def add(self, other: Linear, scale: int = 1) -> Linear:
        terms = dict(self.terms)
        for key, (atom, coef) in other.terms.items():
            old = terms.get(key)
            total = (old[1] if old else 0) + scale * coef
            if total:
                terms[key] = (atom, total)
            elif old:
                del terms[key]
        return Linear(self.dtype, terms, self.const + scale * other.const)

    def scale(self, factor: int) -> Linear:
        if factor == 0:
            return Linear.of_const(0, self.dtype)
        terms = {k: (a, c * factor) for k, (a, c) in self.terms.items()}
        return Linear(self.dtype, terms, self.const * factor)


def linear_to_expr(lin: Linear) -> Expr:
    """Print a linear form back as an expression: ``t0*c0 + t1 - t2*3 + 5``."""
    return linear_to_expr_keyed(lin)[0]


def linear_to_expr_keyed(lin: Linear) -> tuple[Expr, tuple[object, ...]]:
    """``linear_to_expr(lin)`` and its ``structural_key``, the key built from the terms'
    keys as the expression is built (computing it afterwards walks the whole tree, a
    cost the simplifier would otherwise pay for every atom it makes of a linear form)."""
    result: Expr | None = None
    key: tuple[object, ...] = ()
    for term_key, (atom, coef) in lin.terms.items():
        if result is None:
            if coef == 1:
                result, key = atom, term_key
            else:
                factor = _int_const(coef, lin.dtype)
                result = Binary(BinaryOp.MUL, atom, factor)
                key = _binary_key(result, term_key, factor)
            continue
        magnitude = abs(coef)
        term: Expr = atom
        t_key = term_key
        if magnitude != 1:
            factor = _int_const(magnitude, lin.dtype)
            term = Binary(BinaryOp.MUL, atom, factor)
            t_key = _binary_key(term, term_key, factor)
        result = Binary(BinaryOp.ADD if coef > 0 else BinaryOp.SUB, result, term)
        key = (*_binary_head(result), key, t_key)
    if result is None:
        value = _int_const(lin.const, lin.dtype)
        return value, structural_key(value)
    if lin.const != 0:
        value = _int_const(abs(lin.const), lin.dtype)
        result = Binary(BinaryOp.ADD if lin.const > 0 else BinaryOp.SUB, result, value)
        key = (*_binary_head(result), key, structural_key(value))
    return result, key


def _int_const(value: int, dtype: str) -> Const:
    """``const(value, dtype)`` for an integer dtype, without its checks (a hot path)."""
    if dtype in _INT_DTYPES:
        return Const(int(value), dtype)
    return const(value, dtype)


_INT_DTYPES = frozenset(dt.INT_DTYPES + dt.UINT_DTYPES)


def _binary_head(e: Binary) -> tuple[object, ...]:
    return (type(e).__name__, e.dtype, e.op)


def _binary_key(e: Binary, a_key: tuple[object, ...], b: Const) -> tuple[object, ...]:
    """``structural_key(e)`` for ``e = Binary(op, a, b)`` with a's key known, b a Const."""
    return (*_binary_head(e), a_key, structural_key(b))


def _binary_atom(op: BinaryOp, a: Linear, b: Linear) -> Linear:
    """The atom ``op(a, b)`` of two linear forms printed back, with its key."""
    a_expr, a_key = linear_to_expr_keyed(a)
    b_expr, b_key = linear_to_expr_keyed(b)
    atom = Binary(op, a_expr, b_expr)
    return Linear.of_atom(atom, 1, (*_binary_head(atom), a_key, b_key))


# ------------------------------------------------------------------------------------------
# the simplifier


class Simplifier:
    """Simplify expressions under a range map; see the module docstring for the rules."""

    def __init__(self, ranges: RangeMap | None = None):
        self.ranges: dict[Var, tuple[int, int]] = dict(ranges or {})

    # public entry points ----------------------------------------------------------------
    def simplify(self, e: Expr) -> Expr:
        if dt.is_int(e.dtype) and not isinstance(e, Const):
            return linear_to_expr(self.linear(e))
        if dt.is_bool(e.dtype):
            return self._simplify_bool(e)
        return self._simplify_other(e)

    def linear(self, e: Expr) -> Linear:
        """The canonical linear form of an integer expression."""
        rule = _LINEAR_RULES.get(type(e))
        if rule is None:  # a node no rule looks into: an atom of its simplified children
            return Linear.of_atom(map_children(e, self.simplify))
        return rule(self, e)

    def bounds(self, e: Expr) -> Interval:
        """Inclusive integer interval holding every value of ``e`` (conservative)."""
        if isinstance(e, Const):
            return (e.value, e.value) if not dt.is_float(e.dtype) else UNBOUNDED
        if not dt.is_int(e.dtype):
            return UNBOUNDED
        return self.linear_bounds(self.linear(e))

    def linear_bounds(self, lin: Linear) -> Interval:
        lo: float = lin.const
        hi: float = lin.const
        for atom, coef in lin.terms.values():
            a_lo, a_hi = self._atom_bounds(atom)
            if coef > 0:
                lo, hi = lo + coef * a_lo, hi + coef * a_hi
            else:
                lo, hi = lo + coef * a_hi, hi + coef * a_lo
        return lo, hi

    def prove(self, cond: Expr) -> bool | None:
        """True or False when the ranges decide ``cond``, else None."""
        result = self._simplify_bool(cond)
        return bool(result.value) if isinstance(result, Const) else None

    # integer rules: linear forms ---------------------------------------------------------
    def _linear_const(self, e: Const) -> Linear:
        return Linear.of_const(int(e.value), e.dtype)

    def _linear_var(self, e: Var) -> Linear:
        return Linear.of_atom(e)

    def _linear_select(self, e: Select) -> Linear:
        cond = self._simplify_bool(e.cond)
        if isinstance(cond, Const):
            return self.linear(e.true_value if cond.value else e.false_value)
        return Linear.of_atom(Select(cond, self.simplify(e.true_value), self.simplify(e.false_value)))

    def _linear_cast(self, e: Cast) -> Linear:
        value = self.simplify(e.value)
        folded = cast(e.dtype, value)
        return self.linear(folded) if isinstance(folded, Const) else Linear.of_atom(Cast(e.dtype, value))

    def _linear_binary(self, e: Binary) -> Linear:
        rule = _LINEAR_BINARY_RULES.get(e.op)
        if rule is None:
            raise TypeError(f"operator {e.op.value} on integer operands in {e}")
        return rule(self, e)

    def _linear_add(self, e: Binary) -> Linear:
        return self.merge_divmod(self.linear(e.a).add(self.linear(e.b)))

    def _linear_sub(self, e: Binary) -> Linear:
        return self.merge_divmod(self.linear(e.a).add(self.linear(e.b), -1))

    def _linear_mul(self, e: Binary) -> Linear:
        a, b = self.linear(e.a), self.linear(e.b)
        if b.is_const():
            return a.scale(b.const)
        if a.is_const():
            return b.scale(a.const)
        return _binary_atom(e.op, a, b)

    def _linear_divmod(self, e: Binary) -> Linear:
        op = e.op
        a, b = self.linear(e.a), self.linear(e.b)
        if b.is_const() and b.const > 0:
            return self.divmod_const(a, b.const, op)
        if a.is_const() and b.is_const() and b.const != 0:
            return Linear.of_const(BINARY_FUNCTIONS[op](a.const, b.const), e.dtype)
        return _binary_atom(op, a, b)

    def merge_divmod(self, lin: Linear) -> Linear:
        """``(x // c)*c*m + (x % c)*m == x*m``: undo a fuse that a later index recombines."""
        merged = True
        while merged:
            merged = False
            for key, (atom, coef) in lin.terms.items():
                if not _is_div_by_const(atom, BinaryOp.FLOORMOD):
                    continue
                assert isinstance(atom, Binary) and isinstance(atom.b, Const)
                partners = [Binary(BinaryOp.FLOORDIV, atom.a, atom.b)]
                if _is_div_by_const(atom.a, BinaryOp.FLOORDIV):  # (y // d) % c pairs with y // (d*c)
                    inner = atom.a
                    assert isinstance(inner, Binary) and isinstance(inner.b, Const)
                    partners.append(
                        Binary(BinaryOp.FLOORDIV, inner.a, const(inner.b.value * atom.b.value, atom.dtype))
                    )
                for partner in map(structural_key, partners):
                    if partner in lin.terms and lin.terms[partner][1] == coef * atom.b.value:
                        kept = {k: v for k, v in lin.terms.items() if k not in (key, partner)}
                        lin = Linear(lin.dtype, kept, lin.const).add(self.linear(atom.a), coef)
                        merged = True
                        break
                if merged:
                    break
        return lin

    def divmod_const(self, x: Linear, c: int, op: BinaryOp) -> Linear:
        """``x // c`` or ``x % c`` for a positive constant c.

        Write x = g*q + r with g a divisor of c (g = c first, then smaller common factors
        of c and x's coefficients); when the range of r lies in [m*g, (m+1)*g):
        x // c == (q + m) // (c/g) and x % c == ((q + m) % (c/g))*g + r - m*g.
        """
        if c == 1:
            return x if op is BinaryOp.FLOORDIV else Linear.of_const(0, x.dtype)
        if x.is_const():
            return Linear.of_const(BINARY_FUNCTIONS[op](x.const, c), x.dtype)
        inner = self._nested_div(x, c, op)
        if inner is not None:
            return inner
        candidates = sorted({math.gcd(c, coef) for _, coef in x.terms.values()} | {c}, reverse=True)
        for g in candidates:
            if g == 1:
                continue
            q, r = self._split_by(x, g)
            r_lo, r_hi = self.linear_bounds(r)
            if math.isinf(r_lo) or math.isinf(r_hi) or r_lo // g != r_hi // g:
                continue
            m = int(r_lo // g)
            q = q.add(Linear.of_const(m, x.dtype))
            r = r.add(Linear.of_const(-m * g, x.dtype))
            rest = c // g
            if op is BinaryOp.FLOORDIV:
                return q if rest == 1 else self.divmod_const(q, rest, op)
            high = Linear.of_const(0, x.dtype) if rest == 1 else self.divmod_const(q, rest, op).scale(g)
            return high.add(r)
        # always valid: (c*q + r) // c == q + r // c and (c*q + r) % c == r % c
        q, r = self._split_by(x, c)
        atom = _binary_atom(op, r, Linear.of_const(c, x.dtype))
        return q.add(atom) if op is BinaryOp.FLOORDIV else atom

    def _nested_div(self, x: Linear, c: int, op: BinaryOp) -> Linear | None:
        """``(y // a) // c == y // (a*c)`` for positive a."""
        if op is not BinaryOp.FLOORDIV or x.const != 0 or len(x.terms) != 1:
            return None
        ((atom, coef),) = x.terms.values()
        if coef != 1 or not isinstance(atom, Binary) or atom.op is not BinaryOp.FLOORDIV:
            return None
        if not isinstance(atom.b, Const) or atom.b.value <= 0:
            return None
        return self.divmod_const(self.linear(atom.a), int(atom.b.value) * c, op)

    @staticmethod
    def _split_by(x: Linear, g: int) -> tuple[Linear, Linear]:
        """x = g*q + r, moving each term whose coefficient g divides into q (coef/g); the
        constant splits as g*(k // g) + k % g."""
        q = Linear.of_const(0, x.dtype)
        r = Linear.of_const(0, x.dtype)
        for key, (atom, coef) in x.terms.items():
            if coef % g == 0:
                q.terms[key] = (atom, coef // g)
            else:
                r.terms[key] = (atom, coef)
        q.const, r.const = divmod(x.const, g)
        return q, r

    def _min_max(self, e: Binary) -> Linear:
        a, b = self.linear(e.a), self.linear(e.b)
        lo, hi = self.linear_bounds(a.add(b, -1))
        a_wins = hi <= 0 if e.op is BinaryOp.MIN else lo >= 0
        b_wins = lo >= 0 if e.op is BinaryOp.MIN else hi <= 0
        if a_wins:
            return a
        if b_wins:
            return b
        return _binary_atom(e.op, a, b)

    # integer rules: intervals of atoms ----------------------------------------------------
    def _atom_bounds(self, atom: Expr) -> Interval:
        rule = _ATOM_BOUNDS_RULES.get(type(atom))
        return UNBOUNDED if rule is None else rule(self, atom)

    def _var_bounds(self, atom: Var) -> Interval:
        if atom in self.ranges:
            low, extent = self.ranges[atom]
            return low, low + extent - 1
        return UNBOUNDED

    def _binary_bounds(self, atom: Binary) -> Interval:
        op = atom.op
        if (op is BinaryOp.FLOORDIV or op is BinaryOp.FLOORMOD) and _is_div_by_const(atom, op):
            c = int(atom.b.value)  # type: ignore[attr-defined]
            lo, hi = self.bounds(atom.a)
            if op is BinaryOp.FLOORDIV:
                return _floor_div(lo, c), _floor_div(hi, c)
            if not math.isinf(lo) and not math.isinf(hi) and lo // c == hi // c:
                return lo % c, hi % c
            return 0, c - 1
        if op is BinaryOp.MIN or op is BinaryOp.MAX or op is BinaryOp.MUL:
            a, b = self.bounds(atom.a), self.bounds(atom.b)
            if op is BinaryOp.MIN:
                return min(a[0], b[0]), min(a[1], b[1])
            if op is BinaryOp.MAX:
                return max(a[0], b[0]), max(a[1], b[1])
            if not any(math.isinf(v) for v in a + b):
                products = [x * y for x in a for y in b]
                return min(products), max(products)
        return UNBOUNDED

    def _select_bounds(self, atom: Select) -> Interval:
        t, f = self.bounds(atom.true_value), self.bounds(atom.false_value)
        return min(t[0], f[0]), max(t[1], f[1])

    def _cast_bounds(self, atom: Cast) -> Interval:
        return self.bounds(atom.value) if dt.is_int(atom.value.dtype) else UNBOUNDED

    # booleans -----------------------------------------------------------------------------
    def _simplify_bool(self, e: Expr) -> Expr:
        rule = _BOOL_RULES.get(type(e))
        return self._simplify_other(e) if rule is None else rule(self, e)

    def _compare(self, e: Compare) -> Expr:
        return self.compare_simplified(e.op, self.simplify(e.a), self.simplify(e.b))

    def _not(self, e: Not) -> Expr:
        inner = self._simplify_bool(e.a)
        return const(not inner.value, "bool") if isinstance(inner, Const) else Not(inner)

    def _logic(self, e: Binary) -> Expr:
        if e.op is not BinaryOp.AND and e.op is not BinaryOp.OR:
            return self._simplify_other(e)
        a, b = self._simplify_bool(e.a), self._simplify_bool(e.b)
        absorbing = e.op is BinaryOp.OR  # True absorbs ||, False absorbs &&
        for x, y in ((a, b), (b, a)):
            if isinstance(x, Const):
                return const(absorbing, "bool") if bool(x.value) is absorbing else y
        return Binary(e.op, a, b)

    def compare_simplified(self, op: CompareOp, a: Expr, b: Expr) -> Expr:
        """``a <op> b`` for operands already simplified: a bool Const when the ranges
        decide it, else the Compare node."""
        if isinstance(a, Const) and isinstance(b, Const):
            return const(COMPARE_FUNCTIONS[op](a.value, b.value), "bool")
        if dt.is_int(a.dtype):
            lo, hi = self.linear_bounds(self.linear(a).add(self.linear(b), -1))
            decided = _DECIDE[op](lo, hi)
            if decided is not None:
                return const(decided, "bool")
        return Compare(op, a, b)

    # other dtypes: fold constants only --------------------------------------------------
    def _simplify_other(self, e: Expr) -> Expr:
        if isinstance(e, Select):
            cond = self._simplify_bool(e.cond)
            if isinstance(cond, Const):
                return self.simplify(e.true_value if cond.value else e.false_value)
            return Select(cond, self.simplify(e.true_value), self.simplify(e.false_value))
        if isinstance(e, Cast):
            return cast(e.dtype, self.simplify(e.value))
        node = map_children(e, self.simplify)
        if (
            isinstance(node, Binary)
            and node.op in FOLDED_FLOAT_OPS
            and isinstance(node.a, Const)
            and isinstance(node.b, Const)
            and not (node.op is BinaryOp.DIV and node.b.value == 0)
        ):
            return const(BINARY_FUNCTIONS[node.op](float(node.a.value), float(node.b.value)), node.dtype)
        return node


#: operators folded on constant floating-point operands (computed in double precision)
FOLDED_FLOAT_OPS = frozenset(
    {BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV, BinaryOp.MIN, BinaryOp.MAX}
)

_LINEAR_RULES: dict[type, Callable[[Simplifier, Any], Linear]] = {
    Const: Simplifier._linear_const,
    Var: Simplifier._linear_var,
    IterVar: Simplifier._linear_var,
    Binary: Simplifier._linear_binary,
    Select: Simplifier._linear_select,
    Cast: Simplifier._linear_cast,
}

_LINEAR_BINARY_RULES: dict[BinaryOp, Callable[[Simplifier, Binary], Linear]] = {
    BinaryOp.ADD: Simplifier._linear_add,
    BinaryOp.SUB: Simplifier._linear_sub,
    BinaryOp.MUL: Simplifier._linear_mul,
    BinaryOp.FLOORDIV: Simplifier._linear_divmod,
    BinaryOp.FLOORMOD: Simplifier._linear_divmod,
    BinaryOp.MIN: Simplifier._min_max,
    BinaryOp.MAX: Simplifier._min_max,
}

_ATOM_BOUNDS_RULES: dict[type, Callable[[Simplifier, Any], Interval]] = {
    Var: Simplifier._var_bounds,
    IterVar: Simplifier._var_bounds,
    Binary: Simplifier._binary_bounds,
    Select: Simplifier._select_bounds,
    Cast: Simplifier._cast_bounds,
}

_BOOL_RULES: dict[type, Callable[[Simplifier, Any], Expr]] = {
    Compare: Simplifier._compare,
    Not: Simplifier._not,
    Binary: Simplifier._logic,
}

#: decide ``d <op> 0`` for every d in [lo, hi]: True, False, or None when the range allows both
_DECIDE: dict[CompareOp, Callable[[float, float], bool | None]] = {
    CompareOp.LT: lambda lo, hi: True if hi < 0 else False if lo >= 0 else None,
    CompareOp.LE: lambda lo, hi: True if hi <= 0 else False if lo > 0 else None,
    CompareOp.GT: lambda lo, hi: True if lo > 0 else False if hi <= 0 else None,
    CompareOp.GE: lambda lo, hi: True if lo >= 0 else False if hi < 0 else None,
    CompareOp.EQ: lambda lo, hi: True if lo == hi == 0 else False if lo > 0 or hi < 0 else None,
    CompareOp.NE: lambda lo, hi: False if lo == hi == 0 else True if lo > 0 or hi < 0 else None,
}


def _is_div_by_const(e: Expr, op: BinaryOp) -> bool:
    return isinstance(e, Binary) and e.op is op and isinstance(e.b, Const) and e.b.value > 0


def _floor_div(value: float, c: int) -> float:
    return value if math.isinf(value) else value // c


def simplify(e: Expr, ranges: RangeMap | None = None) -> Expr:
    """Simplify ``e`` under ``ranges`` (var -> (min, extent))."""
    return Simplifier(ranges).simplify(e)


def bounds(e: Expr, ranges: RangeMap | None = None) -> Interval:
    """Inclusive interval of an integer ``e`` under ``ranges``."""
    return Simplifier(ranges).bounds(e)


def prove(cond: Expr, ranges: RangeMap | None = None) -> bool | None:
    """True/False when ``ranges`` decide the boolean ``cond``, else None."""
    return Simplifier(ranges).prove(cond)

"""Index expressions as affine forms over the loops around a statement.

Feature extraction (``loop_summary``) needs to know, for every buffer access, how far each
index moves when each enclosing loop runs. ``IndexAnalyzer.linear`` writes an integer
expression as::

    index = const + sum_l c_l * v_l + sum_a c_a * atom_a

over the loop positions ``l`` (0 is the outermost loop around the statement). An *atom*
is a part that is not affine (``f // 7`` after a fuse that does not divide, a ``min``):
it carries the interval its operands allow and the loops it reads, and atoms with equal
keys are the same term, so ``x // 2 - x // 2`` cancels. ``x // c`` and ``x % c`` by a
constant are resolved exactly when the remainder's range allows it
(``(i.0*32 + i.1) // 32 == i.0`` when ``0 <= i.1 < 32``), as TVM's canonical simplifier
does. LetStmt variables (lowering hoists index bases into them) stand for their values.

``split_flat`` turns a flat offset into one form per buffer dimension, by the buffer's
strides (a term whose coefficient is a multiple of the stride of dimension d belongs to
the outermost such d).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ir import dtype as dt
from ir.expr import Binary, BinaryOp, Cast, Const, Expr, IterVar, Select, Var, structural_key

#: an affine form: ({loop position: coefficient}, constant, {atom key: atom})
Lin = tuple[dict[int, int], int, dict[Any, "Atom"]]
UNBOUNDED = (-math.inf, math.inf)

#: operations whose result intervals ``binary_interval`` knows
INTERVAL_OPS = frozenset(
    {
        BinaryOp.ADD,
        BinaryOp.SUB,
        BinaryOp.MUL,
        BinaryOp.FLOORDIV,
        BinaryOp.FLOORMOD,
        BinaryOp.MAX,
        BinaryOp.MIN,
    }
)


@dataclass(frozen=True)
class Atom:
    """``coef * t`` for a non-affine integer term t in ``[lo, hi]`` that reads the loops at
    ``positions`` (sorted); ``root`` is t's root operation (a BinaryOp, "select" or
    "other"), for the op counts."""

    coef: int
    lo: int
    hi: int
    positions: tuple[int, ...]
    root: object

    def scaled(self, factor: int) -> Atom:
        return Atom(self.coef * factor, self.lo, self.hi, self.positions, self.root)

    def scaled_down(self, divisor: int) -> Atom:
        return Atom(self.coef // divisor, self.lo, self.hi, self.positions, self.root)


class LoopRange(Protocol):
    """A loop as the analyzer sees it: its variable runs over [min, min + extent)."""

    min: int
    extent: int


class IndexAnalyzer:
    """Affine forms of expressions under a stack of loops (``loops``, outermost first;
    ``var_pos`` maps id(loop variable) to its position). The caller pushes and pops loops
    and registers LetStmt values with ``bind_let``. Results are memoised per node for
    the analyzer's lifetime (one program): lowering shares index expressions between a
    store and its loads, and a loop variable keeps its position wherever it is used."""

    def __init__(self) -> None:
        self.loops: list[LoopRange] = []
        self.var_pos: dict[int, int] = {}
        self.lets: dict[int, Lin] = {}
        self.memo: dict[int, tuple[Expr, Lin]] = {}

    def bind_let(self, var: Var, value: Expr) -> None:
        self.lets[id(var)] = self.linear(value)

    def dims(
        self, shape: tuple[int, ...], strides: tuple[int, ...], indices: tuple[Expr, ...], name: str
    ) -> list[Lin]:
        """Per-dimension affine forms of an access to buffer ``name`` (a flat index is
        split by ``strides``)."""
        ndim = len(shape)
        if len(indices) == ndim:
            return [self.linear(i) for i in indices]
        if ndim == 0:
            return []
        if len(indices) != 1:
            raise ValueError(
                f"feature extraction: {len(indices)} indices for buffer '{name}' of {ndim} dimension(s)"
            )
        return split_flat(self.linear(indices[0]), strides)

    def linear(self, e: Expr) -> Lin:
        """``e`` in affine form over the loop positions (memoised per node: lowering
        shares index expressions between a store and its loads)."""
        kind = type(e)
        if kind is Const:
            return {}, int(e.value), {}  # type: ignore[attr-defined]
        if kind is Var or kind is IterVar:
            pos = self.var_pos.get(id(e))
            if pos is not None:
                return {pos: 1}, 0, {}
            bound = self.lets.get(id(e))
            return bound if bound is not None else ({}, 0, {})
        memo = self.memo.get(id(e))
        if memo is not None:
            return memo[1]
        result = self._linear_node(e)
        self.memo[id(e)] = (e, result)  # the node is kept alive so its id stays unique
        return result

    def _linear_node(self, e: Expr) -> Lin:
        """The affine form of an operation: by its rule when the rule finds one, else the
        operation is an atom."""
        rule = _LINEAR_RULES.get(type(e))
        lin = None if rule is None else rule(self, e)
        if lin is not None:
            return lin
        key, atom = self.atom(e)
        return {}, 0, {key: atom}

    def _linear_binary(self, e: Binary) -> Lin | None:
        op = e.op
        if op is BinaryOp.ADD or op is BinaryOp.SUB:
            return add(self.linear(e.a), self.linear(e.b), 1 if op is BinaryOp.ADD else -1)
        if op is BinaryOp.MUL:
            a, b = self.linear(e.a), self.linear(e.b)
            if not a[0] and not a[2]:
                return scale(b, a[1])
            if not b[0] and not b[2]:
                return scale(a, b[1])
        elif op is BinaryOp.FLOORDIV or op is BinaryOp.FLOORMOD:
            divisor = self.linear(e.b)
            if not divisor[0] and not divisor[2] and divisor[1] > 0:
                return self.divmod(self.linear(e.a), divisor[1], op)
        return None

    def _linear_cast(self, e: Cast) -> Lin | None:
        return self.linear(e.value) if dt.is_int(e.dtype) else None

    def divmod(self, x: Lin, c: int, op: BinaryOp) -> Lin | None:
        """``x // c`` or ``x % c`` as an affine form when ``x = c*q + r`` with r in [0, c)."""
        terms, const, atoms = x
        q_terms = {k: v // c for k, v in terms.items() if v % c == 0}
        r_terms = {k: v for k, v in terms.items() if v % c != 0}
        q_atoms = {key: a for key, a in atoms.items() if a.coef % c == 0}
        r_atoms = {key: a for key, a in atoms.items() if a.coef % c != 0}
        q_const, r_const = divmod(const, c)
        lo, hi = self.lin_interval((r_terms, r_const, r_atoms))
        if lo < 0 or hi >= c:
            return None
        if op is BinaryOp.FLOORMOD:
            return r_terms, r_const, r_atoms
        return q_terms, q_const, {key: a.scaled_down(c) for key, a in q_atoms.items()}

    def atom(self, e: Expr) -> tuple[Any, Atom]:
        """``e`` as a term of its own: its key, and the atom with coefficient 1."""
        lo, hi = self.interval(e)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo = hi = 0
        positions = tuple(sorted(self.positions(e)))
        root: object = "select" if isinstance(e, Select) else "other"
        if isinstance(e, Binary):
            root = e.op
            # keyed by the operands' affine forms, so the same term written twice (or
            # once through a LetStmt) is recognised
            key: Any = (e.op, lin_key(self.linear(e.a)), lin_key(self.linear(e.b)))
        else:
            key = structural_key(e)
        return key, Atom(1, int(lo), int(hi), positions, root)

    def positions(self, e: Expr) -> set[int]:
        """Loop positions ``e`` reads (through LetStmt variables too)."""
        if isinstance(e, Var):
            pos = self.var_pos.get(id(e))
            if pos is not None:
                return {pos}
            bound = self.lets.get(id(e))
            if bound is None:
                return set()
            found = set(bound[0])
            for a in bound[2].values():
                found.update(a.positions)
            return found
        found = set()
        for child in children(e):
            found |= self.positions(child)
        return found

    def interval(self, e: Expr) -> tuple[float, float]:
        """Inclusive integer bounds of ``e`` over the enclosing loops' ranges."""
        rule = _INTERVAL_RULES.get(type(e))
        return UNBOUNDED if rule is None else rule(self, e)

    def _const_interval(self, e: Const) -> tuple[float, float]:
        return e.value, e.value

    def _var_interval(self, e: Var) -> tuple[float, float]:
        pos = self.var_pos.get(id(e))
        if pos is not None:
            loop = self.loops[pos]
            return loop.min, loop.min + loop.extent - 1
        bound = self.lets.get(id(e))
        return self.lin_interval(bound) if bound is not None else UNBOUNDED

    def _cast_interval(self, e: Cast) -> tuple[float, float]:
        return self.interval(e.value)

    def _binary_interval(self, e: Binary) -> tuple[float, float]:
        if e.op not in INTERVAL_OPS:
            return UNBOUNDED
        return binary_interval(e.op, self.interval(e.a), self.interval(e.b))

    def lin_interval(self, lin: Lin) -> tuple[float, float]:
        terms, const, atoms = lin
        lo = hi = float(const)
        for k, c in terms.items():
            loop = self.loops[k]
            a, b = c * loop.min, c * (loop.min + loop.extent - 1)
            lo += min(a, b)
            hi += max(a, b)
        for atom in atoms.values():
            a, b = atom.coef * atom.lo, atom.coef * atom.hi
            lo += min(a, b)
            hi += max(a, b)
        return lo, hi


_LINEAR_RULES: dict[type, Callable[[IndexAnalyzer, Any], Lin | None]] = {
    Binary: IndexAnalyzer._linear_binary,
    Cast: IndexAnalyzer._linear_cast,
}

_INTERVAL_RULES: dict[type, Callable[[IndexAnalyzer, Any], tuple[float, float]]] = {
    Const: IndexAnalyzer._const_interval,
    Var: IndexAnalyzer._var_interval,
    IterVar: IndexAnalyzer._var_interval,
    Cast: IndexAnalyzer._cast_interval,
    Binary: IndexAnalyzer._binary_interval,
}


def children(e: Expr) -> list[Expr]:
    out: list[Expr] = []
    for name in e.child_fields:
        value = getattr(e, name)
        if isinstance(value, tuple):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


def add(a: Lin, b: Lin, sign: int) -> Lin:
    terms = dict(a[0])
    for k, c in b[0].items():
        v = terms.get(k, 0) + sign * c
        if v:
            terms[k] = v
        else:
            terms.pop(k, None)
    atoms = a[2]
    if b[2]:
        atoms = dict(atoms)
        for key, x in b[2].items():
            mine = atoms.get(key)
            coef = sign * x.coef + (mine.coef if mine is not None else 0)
            if coef:
                atoms[key] = Atom(coef, x.lo, x.hi, x.positions, x.root)
            else:
                atoms.pop(key, None)
    return terms, a[1] + sign * b[1], atoms


def scale(a: Lin, factor: int) -> Lin:
    if factor == 0:
        return {}, 0, {}
    atoms = {key: x.scaled(factor) for key, x in a[2].items()}
    return {k: factor * c for k, c in a[0].items()}, factor * a[1], atoms


def lin_key(lin: Lin) -> tuple[Any, ...]:
    atoms = frozenset((key, a.coef) for key, a in lin[2].items())
    return frozenset(lin[0].items()), lin[1], atoms


def split_flat(lin: Lin, strides: tuple[int, ...]) -> list[Lin]:
    """A flat affine index split into one form per dimension (see the module docstring)."""
    order = sorted(range(len(strides)), key=lambda d: -strides[d])
    terms: list[dict[int, int]] = [{} for _ in strides]
    atoms: list[dict[Any, Atom]] = [{} for _ in strides]
    consts = [0] * len(strides)

    def home(coef: int) -> int:
        return next((d for d in order if coef % strides[d] == 0), order[-1])

    for k, c in lin[0].items():
        d = home(c)
        terms[d][k] = c // strides[d]
    for key, a in lin[2].items():
        d = home(a.coef)
        atoms[d][key] = Atom(a.coef // strides[d], a.lo, a.hi, a.positions, a.root)
    rest = lin[1]
    for d in order:
        consts[d], rest = divmod(rest, strides[d])
    return [(terms[d], consts[d], atoms[d]) for d in range(len(strides))]


def binary_interval(op: BinaryOp, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    inf = math.inf
    if op is BinaryOp.ADD:
        return a[0] + b[0], a[1] + b[1]
    if op is BinaryOp.SUB:
        return a[0] - b[1], a[1] - b[0]
    if op is BinaryOp.MUL:
        if not all(math.isfinite(x) for x in (*a, *b)):
            return -inf, inf
        corners = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
        return min(corners), max(corners)
    if op is BinaryOp.MAX:
        return max(a[0], b[0]), max(a[1], b[1])
    if op is BinaryOp.MIN:
        return min(a[0], b[0]), min(a[1], b[1])
    if b[0] == b[1] and b[0] > 0 and math.isfinite(b[0]):
        c = int(b[0])
        if op is BinaryOp.FLOORDIV:
            return (a[0] // c if math.isfinite(a[0]) else -inf), (a[1] // c if math.isfinite(a[1]) else inf)
        if op is BinaryOp.FLOORMOD:
            if math.isfinite(a[0]) and math.isfinite(a[1]) and a[1] - a[0] < c and a[0] % c <= a[1] % c:
                return a[0] % c, a[1] % c
            return 0, c - 1
    return -inf, inf

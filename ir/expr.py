"""Scalar expressions shared by the declaration DSL (te) and the loop-nest IR (tir).

Every node is a frozen dataclass; Python operators build new nodes (``A[i, k] * B[k, j]``),
so a declaration reads like the math it describes. Nodes compare by identity: ``a == b``
builds a ``Compare`` node (as in TVM), and structural comparison is ``structural_key``.

Dtype rules (TVM's, simplified): a Python literal takes the dtype of the expression it
meets (``x * 2`` with x float32 gives float32); two integer expressions of different
widths widen to the larger; any other mismatch is a ``DTypeError`` naming both sides.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ir import dtype as dt
from ir.dtype import DTypeError
from ir.printer import PRINTER

if TYPE_CHECKING:
    from ir.te import Tensor


class Expr:
    """Base of all scalar expressions. Subclasses are frozen dataclasses with a ``dtype``."""

    dtype: str
    #: names of the dataclass fields holding child expressions (a field may hold a tuple)
    child_fields: tuple[str, ...] = ()

    __hash__ = object.__hash__

    # arithmetic -------------------------------------------------------------------------
    def __add__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.ADD, self, other)

    def __radd__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.ADD, other, self)

    def __sub__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.SUB, self, other)

    def __rsub__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.SUB, other, self)

    def __mul__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.MUL, self, other)

    def __rmul__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.MUL, other, self)

    def __truediv__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.DIV, self, other)

    def __rtruediv__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.DIV, other, self)

    def __floordiv__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.FLOORDIV, self, other)

    def __rfloordiv__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.FLOORDIV, other, self)

    def __mod__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.FLOORMOD, self, other)

    def __rmod__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.FLOORMOD, other, self)

    def __pow__(self, other: ExprLike) -> Expr:
        return call("pow", self, other)

    def __neg__(self) -> Expr:
        return binary(BinaryOp.SUB, const(0, self.dtype), self)

    def __abs__(self) -> Expr:
        return call("abs", self)

    # comparison and logic ---------------------------------------------------------------
    def __lt__(self, other: ExprLike) -> Expr:
        return compare(CompareOp.LT, self, other)

    def __le__(self, other: ExprLike) -> Expr:
        return compare(CompareOp.LE, self, other)

    def __gt__(self, other: ExprLike) -> Expr:
        return compare(CompareOp.GT, self, other)

    def __ge__(self, other: ExprLike) -> Expr:
        return compare(CompareOp.GE, self, other)

    def __eq__(self, other: object) -> Any:  # builds a node, as in TVM
        return compare(CompareOp.EQ, self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> Any:
        return compare(CompareOp.NE, self, other)  # type: ignore[arg-type]

    def __and__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.AND, self, other)

    def __rand__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.AND, other, self)

    def __or__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.OR, self, other)

    def __ror__(self, other: ExprLike) -> Expr:
        return binary(BinaryOp.OR, other, self)

    def __invert__(self) -> Expr:
        return Not(as_bool(self))

    def __bool__(self) -> bool:
        raise TypeError(
            f"expression {self} cannot be used as a Python bool; "
            "use te.if_then_else, te.all or te.any to build a condition"
        )

    def astype(self, dtype: str) -> Expr:
        return cast(dtype, self)

    def key_fields(self) -> tuple[Any, ...]:
        """What tells this node apart from another of its class with the same dtype and
        children, for ``structural_key``: its operator, tensor, reducer, buffer..."""
        return ()

    def __str__(self) -> str:
        return PRINTER.expr(self)

    __repr__ = __str__


ExprLike = Expr | int | float | bool


class BinaryOp(enum.Enum):
    """Binary operators; the value is the printed spelling."""

    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    FLOORDIV = "//"
    FLOORMOD = "%"
    MAX = "max"
    MIN = "min"
    AND = "&&"
    OR = "||"


LOGICAL_OPS = frozenset({BinaryOp.AND, BinaryOp.OR})
ARITH_OPS = frozenset(BinaryOp) - LOGICAL_OPS


class CompareOp(enum.Enum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="


# ------------------------------------------------------------------------------------------
# what the operators compute


def floordiv(a: Any, b: Any) -> Any:
    """TVM's ``floordiv``: the quotient rounded toward minus infinity. On integers Python's
    ``//``; on floats ``floor(a / b)``, what the LLVM back end emits, which differs from
    Python's float ``//`` (``1.0 // 0.1 == 9.0``, ``floor(1.0 / 0.1) == 10.0``)."""
    if isinstance(a, float) or isinstance(b, float):
        quotient = a / b
        return float(math.floor(quotient)) if math.isfinite(quotient) else quotient
    if isinstance(b, int) and b == 0 and isinstance(a, int):
        return INT_DIVISION_BY_ZERO
    return a // b


def floormod(a: Any, b: Any) -> Any:
    """TVM's ``floormod``: ``a - floordiv(a, b) * b``, which takes the sign of b (Python's
    ``%`` on integers)."""
    if isinstance(a, float) or isinstance(b, float):
        return a - floordiv(a, b) * b
    if isinstance(b, int) and b == 0 and isinstance(a, int):
        return INT_DIVISION_BY_ZERO
    return a % b


def maximum(a: Any, b: Any) -> Any:
    """TVM's ``max``: ``a > b ? a : b`` (so a NaN in a loses and a NaN in b wins)."""
    return a if a > b else b


def minimum(a: Any, b: Any) -> Any:
    """TVM's ``min``: ``a < b ? a : b``."""
    return a if a < b else b


def logical_and(a: Any, b: Any) -> bool:
    return bool(a) and bool(b)


def logical_or(a: Any, b: Any) -> bool:
    return bool(a) or bool(b)


#: The value of an integer ``x // 0`` and ``x % 0`` wherever it is computed: numpy's answer
#: (``np.floor_divide`` and ``np.mod`` on integers give 0), so the numpy reference, the
#: interpreter, constant folding and the generated code agree, and a zero divisor read
#: from a tensor at run time cannot trap the process (x86 ``idiv`` raises SIGFPE; the
#: LLVM back end guards the divisor). ``INT_MIN // -1`` wraps to INT_MIN, as in numpy. A
#: divisor that is the constant 0 is refused when the expression is built (``binary``).
INT_DIVISION_BY_ZERO = 0

#: What each binary operator computes, on Python numbers (TVM's semantics; ``/`` is only
#: defined on floats). The simplifier and the LLVM back end fold constants with it, and the
#: numpy reference evaluator applies the same functions to arrays where numpy's operators
#: mean the same elementwise. Integer ``//`` and ``%`` by zero give 0 (INT_DIVISION_BY_ZERO).
BINARY_FUNCTIONS: dict[BinaryOp, Callable[[Any, Any], Any]] = {
    BinaryOp.ADD: operator.add,
    BinaryOp.SUB: operator.sub,
    BinaryOp.MUL: operator.mul,
    BinaryOp.DIV: operator.truediv,
    BinaryOp.FLOORDIV: floordiv,
    BinaryOp.FLOORMOD: floormod,
    BinaryOp.MAX: maximum,
    BinaryOp.MIN: minimum,
    BinaryOp.AND: logical_and,
    BinaryOp.OR: logical_or,
}

#: What each comparison computes (elementwise on numpy arrays too).
COMPARE_FUNCTIONS: dict[CompareOp, Callable[[Any, Any], Any]] = {
    CompareOp.LT: operator.lt,
    CompareOp.LE: operator.le,
    CompareOp.GT: operator.gt,
    CompareOp.GE: operator.ge,
    CompareOp.EQ: operator.eq,
    CompareOp.NE: operator.ne,
}


# ------------------------------------------------------------------------------------------
# nodes


class IterVarKind(enum.Enum):
    SPATIAL = "spatial"
    REDUCE = "reduce"


@dataclass(frozen=True, eq=False, repr=False)
class Const(Expr):
    value: int | float | bool
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A scalar variable: a loop index, an axis of a compute op, or a reducer operand."""

    name: str
    dtype: str = "int32"


@dataclass(frozen=True, eq=False, repr=False)
class IterVar(Var):
    """An axis of a compute op: ``dom_min <= self < dom_min + extent``.

    ``te.compute`` makes SPATIAL axes (dom_min 0); ``te.reduce_axis`` makes REDUCE axes.
    """

    dom_min: int = 0
    extent: int = 1
    kind: IterVarKind = IterVarKind.SPATIAL


@dataclass(frozen=True, eq=False, repr=False)
class Binary(Expr):
    op: BinaryOp
    a: Expr
    b: Expr
    dtype: str = field(init=False)
    child_fields = ("a", "b")

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", "bool" if self.op in LOGICAL_OPS else self.a.dtype)

    def key_fields(self) -> tuple[Any, ...]:
        return (self.op,)


@dataclass(frozen=True, eq=False, repr=False)
class Compare(Expr):
    op: CompareOp
    a: Expr
    b: Expr
    dtype: str = field(default="bool", init=False)
    child_fields = ("a", "b")

    def key_fields(self) -> tuple[Any, ...]:
        return (self.op,)

    def __bool__(self) -> bool:
        # Lets `x in [y, z]` and `x == y` in plain Python mean identity, as in TVM.
        if self.op is CompareOp.EQ:
            return self.a is self.b
        if self.op is CompareOp.NE:
            return self.a is not self.b
        return Expr.__bool__(self)


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    a: Expr
    dtype: str = field(default="bool", init=False)
    child_fields = ("a",)


@dataclass(frozen=True, eq=False, repr=False)
class Select(Expr):
    """``cond ? true_value : false_value``. Only the chosen side is evaluated (TVM's
    ``if_then_else``), so padding may guard an out-of-bounds read."""

    cond: Expr
    true_value: Expr
    false_value: Expr
    dtype: str = field(init=False)
    child_fields = ("cond", "true_value", "false_value")

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.true_value.dtype)


@dataclass(frozen=True, eq=False, repr=False)
class Cast(Expr):
    dtype: str
    value: Expr
    child_fields = ("value",)


class Intrinsic(enum.Enum):
    """Math intrinsics; the value is the name used in printing and in ``call``."""

    EXP = "exp"
    EXP2 = "exp2"
    LOG = "log"
    LOG2 = "log2"
    LOG10 = "log10"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    ERF = "erf"
    POW = "pow"
    ABS = "abs"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    TRUNC = "trunc"
    SIN = "sin"
    COS = "cos"
    FMOD = "fmod"

    @property
    def arity(self) -> int:
        return 2 if self in (Intrinsic.POW, Intrinsic.FMOD) else 1


#: intrinsics that only make sense on floating-point values
FLOAT_ONLY_INTRINSICS = frozenset(Intrinsic) - {Intrinsic.ABS}


@dataclass(frozen=True, eq=False, repr=False)
class Call(Expr):
    intrinsic: Intrinsic
    args: tuple[Expr, ...]
    dtype: str = field(init=False)
    child_fields = ("args",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.args[0].dtype)

    def key_fields(self) -> tuple[Any, ...]:
        return (self.intrinsic,)


@dataclass(frozen=True, eq=False, repr=False)
class TensorRead(Expr):
    """``tensor[indices]`` in a declaration (TVM's ProducerLoad)."""

    tensor: Tensor
    indices: tuple[Expr, ...]
    dtype: str = field(init=False)
    child_fields = ("indices",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.tensor.dtype)

    def key_fields(self) -> tuple[Any, ...]:
        return (id(self.tensor.op), self.tensor.value_index)


@dataclass(frozen=True, eq=False)
class CommReducer:
    """A commutative, associative reduction: ``combine(x, y)`` and its identity element.

    ``combine`` and ``identity`` are Python functions building expressions, so one
    reducer serves every dtype (``identity(dtype) -> Expr``).
    """

    name: str
    combine: Callable[[Expr, Expr], Expr]
    identity: Callable[[str], Expr]

    def combine_expr(self, dtype: str) -> tuple[Var, Var, Expr]:
        """Return (x, y, combine(x, y)) with fresh variables x, y of ``dtype``."""
        x, y = Var("x", dtype), Var("y", dtype)
        return x, y, self.combine(x, y)

    def __repr__(self) -> str:
        return f"CommReducer({self.name})"


def _tuple_reducer_is_not_scalar(*args: Any) -> Any:
    raise TypeError("a tuple reducer combines tuples: use combine_tuple / identity_tuple")


@dataclass(frozen=True, eq=False)
class TupleReducer(CommReducer):
    """A commutative reducer over tuples of values (TVM's CommReducer with several lhs and
    rhs), such as argmax over (index, value): ``combine_tuple(xs, ys) -> zs`` and
    ``identity_tuple(dtypes) -> es``, one element per reduced value. Its scalar ``combine``
    and ``identity`` raise: a tuple Reduce is read through its ``sources``."""

    combine_tuple: Callable[[tuple[Expr, ...], tuple[Expr, ...]], tuple[Expr, ...]]
    identity_tuple: Callable[[tuple[str, ...]], tuple[Expr, ...]]

    @classmethod
    def make(
        cls,
        name: str,
        combine_tuple: Callable[[tuple[Expr, ...], tuple[Expr, ...]], tuple[Expr, ...]],
        identity_tuple: Callable[[tuple[str, ...]], tuple[Expr, ...]],
    ) -> TupleReducer:
        scalar = _tuple_reducer_is_not_scalar
        return cls(name, scalar, scalar, combine_tuple, identity_tuple)

    def combine_exprs(
        self, dtypes: tuple[str, ...]
    ) -> tuple[tuple[Var, ...], tuple[Var, ...], tuple[Expr, ...]]:
        """(xs, ys, combine_tuple(xs, ys)) with fresh variables of ``dtypes``."""
        xs = tuple(Var(f"x{n}", d) for n, d in enumerate(dtypes))
        ys = tuple(Var(f"y{n}", d) for n, d in enumerate(dtypes))
        return xs, ys, self.combine_tuple(xs, ys)

    def __repr__(self) -> str:
        return f"TupleReducer({self.name})"


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Expr):
    """``reducer`` over ``axis`` of ``source``, where ``condition`` holds (TVM's Reduce).

    A tuple reduction (``reducer`` a TupleReducer, TVM's Reduce with several sources) holds
    all its ``sources`` and the element ``value_index`` it yields; ``source`` is
    ``sources[value_index]``. Walks over ``children`` see every source."""

    reducer: CommReducer
    source: Expr
    axis: tuple[IterVar, ...]
    condition: Expr | None = None
    sources: tuple[Expr, ...] = ()
    value_index: int = 0
    dtype: str = field(init=False)
    child_fields = ("source", "sources", "condition")

    @property
    def is_tuple(self) -> bool:
        return bool(self.sources)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", self.source.dtype)

    def key_fields(self) -> tuple[Any, ...]:
        return (self.reducer.name, tuple(id(a) for a in self.axis), self.value_index)


# ------------------------------------------------------------------------------------------
# constructors with dtype checking


def const(value: int | float | bool, dtype: str | None = None) -> Const:
    """A constant. Without ``dtype``: bool, int32 or float32 (TVM's defaults)."""
    if dtype is None:
        dtype = "bool" if isinstance(value, bool) else "int32" if isinstance(value, int) else "float32"
    dt.check_dtype(dtype)
    if dt.is_bool(dtype):
        value = bool(value)
    elif dt.is_int(dtype):
        if isinstance(value, float) and not value.is_integer():
            raise DTypeError(f"constant {value} is not an integer but dtype is {dtype}")
        value = int(value)
    else:
        value = float(value)
    return Const(value, dtype)


def convert(value: ExprLike, like: str | None = None) -> Expr:
    """Turn a Python literal into a Const of the dtype ``like`` it meets (see module doc)."""
    if isinstance(value, Expr):
        return value
    value = python_number(value)
    if not isinstance(value, (bool, int, float)):
        raise DTypeError(f"cannot use {value!r} of type {type(value).__name__} in an expression")
    if isinstance(value, bool):
        return const(value, "bool")
    if like is None or dt.is_bool(like):
        return const(value)
    if isinstance(value, float) and not dt.is_float(like):
        return const(value, "float32")
    return const(value, like)


def python_number(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``np.int64(4)`` -> 4,
    ``np.float32(0.5)`` -> 0.5, ``np.bool_(True)`` -> True); anything else unchanged.
    Declarations often compute shapes and constants with numpy."""
    if isinstance(value, (bool, int, float)) or not hasattr(value, "dtype"):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if type(value).__name__ in ("bool", "bool_") and hasattr(value, "item"):  # numpy.bool_
        return bool(value.item())
    return value


def _unify(a: ExprLike, b: ExprLike, what: str) -> tuple[Expr, Expr]:
    if not isinstance(a, Expr) and not isinstance(b, Expr):
        raise DTypeError(f"{what} needs at least one expression, got {a!r} and {b!r}")
    ea = convert(a, b.dtype if isinstance(b, Expr) else None)
    eb = convert(b, ea.dtype)
    if ea.dtype != eb.dtype:
        if dt.is_int(ea.dtype) and dt.is_int(eb.dtype):
            wide = ea.dtype if dt.bits(ea.dtype) >= dt.bits(eb.dtype) else eb.dtype
            return cast(wide, ea), cast(wide, eb)
        raise DTypeError(
            f"{what}: operand dtypes differ ({ea} is {ea.dtype}, {eb} is {eb.dtype}); "
            "cast one side with .astype()"
        )
    return ea, eb


def binary(op: BinaryOp, a: ExprLike, b: ExprLike) -> Expr:
    if op in LOGICAL_OPS:
        return Binary(op, as_bool(convert(a)), as_bool(convert(b)))
    ea, eb = _unify(a, b, f"operator {op.value}")
    if op is BinaryOp.DIV and not dt.is_float(ea.dtype):
        raise DTypeError(
            f"'/' on {ea.dtype} operands ({ea} / {eb}) is ambiguous; use // (floordiv) "
            "or cast to a float dtype"
        )
    if op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD) and dt.is_bool(ea.dtype):
        raise DTypeError(f"operator {op.value} is not defined on {ea.dtype}")
    if op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD) and dt.is_int(ea.dtype) and is_const(eb, 0):
        raise ZeroDivisionError(
            f"integer division by the constant zero: {Binary(op, ea, eb)} ({ea.dtype}); "
            "a divisor read at run time that is 0 gives 0, as numpy"
        )
    return Binary(op, ea, eb)


def compare(op: CompareOp, a: ExprLike, b: ExprLike) -> Expr:
    ea, eb = _unify(a, b, f"comparison {op.value}")
    return Compare(op, ea, eb)


def as_bool(e: Expr) -> Expr:
    if not dt.is_bool(e.dtype):
        raise DTypeError(f"expected a bool condition, got {e} of dtype {e.dtype}")
    return e


def cast(dtype: str, value: ExprLike) -> Expr:
    dt.check_dtype(dtype)
    e = convert(value, dtype)
    if e.dtype == dtype:
        return e
    if isinstance(e, Const):
        return const(_cast_value(e.value, dtype), dtype)
    return Cast(dtype, e)


def _cast_value(value: int | float | bool, dtype: str) -> int | float | bool:
    if dt.is_bool(dtype):
        return bool(value)
    if dt.is_int(dtype):
        return math.trunc(value)
    return float(value)


def call(name: str | Intrinsic, *args: ExprLike) -> Expr:
    """Call a math intrinsic by name: ``call("exp", x)``."""
    try:
        intrinsic = Intrinsic(name) if isinstance(name, str) else name
    except ValueError:
        names = ", ".join(i.value for i in Intrinsic)
        raise DTypeError(f"unknown intrinsic {name!r}; known: {names}") from None
    if len(args) != intrinsic.arity:
        raise DTypeError(f"{intrinsic.value} takes {intrinsic.arity} argument(s), got {len(args)}")
    if intrinsic.arity == 2:
        converted: tuple[Expr, ...] = _unify(args[0], args[1], intrinsic.value)
    else:
        converted = (convert(args[0]),)
    if intrinsic in FLOAT_ONLY_INTRINSICS and not dt.is_float(converted[0].dtype):
        raise DTypeError(
            f"{intrinsic.value}({converted[0]}) needs a float argument, got {converted[0].dtype}"
        )
    return Call(intrinsic, converted)


def select(cond: ExprLike, true_value: ExprLike, false_value: ExprLike) -> Expr:
    """``cond ? true_value : false_value`` (TVM's ``if_then_else``)."""
    c = as_bool(convert(cond))
    if not isinstance(true_value, Expr) and not isinstance(false_value, Expr):
        true_value = convert(true_value)  # two literals: the first one's default dtype
    t, f = _unify(true_value, false_value, "if_then_else")
    return Select(c, t, f)


def max_expr(a: ExprLike, b: ExprLike) -> Expr:
    ea, eb = _unify(a, b, "max")
    return Binary(BinaryOp.MAX, ea, eb)


def min_expr(a: ExprLike, b: ExprLike) -> Expr:
    ea, eb = _unify(a, b, "min")
    return Binary(BinaryOp.MIN, ea, eb)


# ------------------------------------------------------------------------------------------
# generic traversal


def children(e: Expr) -> Iterator[Expr]:
    """The direct child expressions of ``e`` in field order."""
    for name in e.child_fields:
        value = getattr(e, name)
        if isinstance(value, tuple):
            yield from value
        elif value is not None:
            yield value


def map_children(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Rebuild ``e`` with ``fn`` applied to each child; returns ``e`` itself if none changed."""
    changes: dict[str, Any] = {}
    for name in e.child_fields:
        value = getattr(e, name)
        if isinstance(value, tuple):
            new = tuple(fn(v) for v in value)
            if any(n is not v for n, v in zip(new, value, strict=True)):
                changes[name] = new
        elif value is not None:
            new_value = fn(value)
            if new_value is not value:
                changes[name] = new_value
    if not changes:
        return e
    return dataclasses.replace(e, **changes)  # type: ignore[type-var]


def post_order(e: Expr) -> Iterator[Expr]:
    """All sub-expressions of ``e``, children before parents (shared nodes repeat)."""
    for child in children(e):
        yield from post_order(child)
    yield e


def substitute(e: Expr, mapping: dict[Var, Expr]) -> Expr:
    """Replace variables (by identity) with expressions, everywhere in ``e``."""
    if not mapping:
        return e

    def visit(node: Expr) -> Expr:
        if isinstance(node, Var):
            return mapping.get(node, node)
        return map_children(node, visit)

    return visit(e)


def free_vars(e: Expr) -> list[Var]:
    """Variables read by ``e`` in first-seen order, excluding reduction axes bound inside."""
    seen: dict[int, Var] = {}
    bound: set[int] = set()
    for node in post_order(e):
        if isinstance(node, Reduce):
            bound.update(id(a) for a in node.axis)
        if isinstance(node, Var) and id(node) not in seen:
            seen[id(node)] = node
    return [v for k, v in seen.items() if k not in bound]


def tensor_reads(e: Expr) -> list[TensorRead]:
    return [n for n in post_order(e) if isinstance(n, TensorRead)]


def structural_key(e: Expr) -> tuple[Any, ...]:
    """A hashable key equal for structurally identical expressions (vars by identity)."""
    if isinstance(e, Const):
        return ("const", e.value, e.dtype)
    if isinstance(e, Var):
        return ("var", id(e))
    return (type(e).__name__, e.dtype, *e.key_fields(), *[structural_key(c) for c in children(e)])


def structural_equal(a: Expr, b: Expr) -> bool:
    return structural_key(a) == structural_key(b)


def is_const(e: Expr, value: int | float | None = None) -> bool:
    return isinstance(e, Const) and (value is None or e.value == value)


def as_exprs(values: Sequence[ExprLike]) -> tuple[Expr, ...]:
    return tuple(convert(v, "int32") for v in values)

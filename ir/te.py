"""The tensor-expression declaration DSL (TVM's ``te``): say *what* to compute.

A declaration is a graph of operations: ``placeholder`` ops are inputs, ``compute`` ops
define each output element by an expression over axes (and reduction axes). Nothing here
says *how* to compute; that is the loop state's job (Ansor paper section 3: the search
space is derived from this declaration alone).

    A = te.placeholder((N, K), name="A")
    B = te.placeholder((K, M), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

Shapes are static positive integers.
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ir import dtype as dt
from ir.expr import (
    BinaryOp,
    CommReducer,
    Expr,
    ExprLike,
    IterVar,
    IterVarKind,
    Reduce,
    TensorRead,
    as_bool,
    binary,
    call,
    cast,
    const,
    convert,
    max_expr,
    min_expr,
    post_order,
    select,
)


class DeclarationError(ValueError):
    """A malformed declaration: bad shape, wrong number of indices, misplaced reduction."""


@dataclass(frozen=True, eq=False)
class Operation:
    """Base of placeholder and compute operations; compared by identity."""

    name: str

    @property
    def output(self) -> Tensor:
        return self._output  # type: ignore[attr-defined, no-any-return]

    @property
    def input_tensors(self) -> list[Tensor]:
        return []


@dataclass(frozen=True, eq=False)
class PlaceholderOp(Operation):
    shape: tuple[int, ...]
    dtype: str

    def __repr__(self) -> str:
        return f"PlaceholderOp({self.name}, {list(self.shape)}, {self.dtype})"


@dataclass(frozen=True, eq=False)
class ComputeOp(Operation):
    """``name(axis) = body``; ``body`` may be a Reduce over ``reduce_axis``."""

    axis: tuple[IterVar, ...]
    reduce_axis: tuple[IterVar, ...]
    body: Expr
    tag: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.extent for a in self.axis)

    @property
    def dtype(self) -> str:
        return self.body.dtype

    @property
    def input_tensors(self) -> list[Tensor]:
        """Tensors read by the body, each once, in first-read order."""
        seen: dict[int, Tensor] = {}
        for node in post_order(self.body):
            if isinstance(node, TensorRead) and id(node.tensor.op) not in seen:
                seen[id(node.tensor.op)] = node.tensor
        return list(seen.values())

    def __repr__(self) -> str:
        return f"ComputeOp({self.name}, {list(self.shape)}, {self.dtype})"


@dataclass(frozen=True, eq=False)
class Tensor:
    """The output of an operation. ``T[i, j]`` reads an element inside a declaration."""

    op: Operation
    shape: tuple[int, ...]
    dtype: str
    value_index: int = 0

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices: ExprLike | tuple[ExprLike, ...]) -> Expr:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != len(self.shape):
            raise DeclarationError(
                f"tensor '{self.name}' has {len(self.shape)} dimension(s) {list(self.shape)}, "
                f"indexed with {len(indices)} index(es)"
            )
        converted = []
        for index in indices:
            e = convert(index, "int32")
            if not dt.is_int(e.dtype):
                raise DeclarationError(
                    f"index {e} of tensor '{self.name}' has dtype {e.dtype}, not an integer"
                )
            converted.append(e)
        return TensorRead(self, tuple(converted))

    def __hash__(self) -> int:
        return hash((id(self.op), self.value_index))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tensor) and other.op is self.op and other.value_index == self.value_index

    def __repr__(self) -> str:
        return f"Tensor({self.name}, {list(self.shape)}, {self.dtype})"


def _check_shape(shape: Sequence[int] | int, what: str) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    result = tuple(shape)
    for extent in result:
        if not isinstance(extent, int) or isinstance(extent, bool) or extent < 1:
            raise DeclarationError(
                f"{what}: shape {list(result)} must hold positive integers, got {extent!r}"
            )
    return result


def _make_output(op: Operation, shape: tuple[int, ...], dtype: str) -> Tensor:
    tensor = Tensor(op, shape, dtype)
    object.__setattr__(op, "_output", tensor)
    return tensor


def placeholder(shape: Sequence[int] | int, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of static ``shape``."""
    dims = _check_shape(shape, f"placeholder '{name}'")
    dt.check_dtype(dtype)
    return _make_output(PlaceholderOp(name, dims, dtype), dims, dtype)


def reduce_axis(dom: tuple[int, int], name: str = "rv") -> IterVar:
    """A reduction axis ranging over ``dom = (begin, end)``, end exclusive."""
    begin, end = dom
    if not builtins.all(isinstance(v, int) for v in dom) or end <= begin:
        raise DeclarationError(f"reduce_axis '{name}': range {dom} must be two integers with begin < end")
    return IterVar(name, "int32", begin, end - begin, IterVarKind.REDUCE)


_AXIS_NAMES = ("i", "j", "k", "l", "m", "n", "o", "p")


def compute(
    shape: Sequence[int] | int,
    fcompute: Callable[..., ExprLike],
    name: str = "compute",
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> Tensor:
    """``name[axis] = fcompute(*axis)``; the lambda's parameter names name the axes."""
    dims = _check_shape(shape, f"compute '{name}'")
    params = list(inspect.signature(fcompute).parameters)
    if len(params) == len(dims):
        names = params
    elif (
        len(params) == 1
        and inspect.signature(fcompute).parameters[params[0]].kind is inspect.Parameter.VAR_POSITIONAL
    ):
        names = [_AXIS_NAMES[d] if d < len(_AXIS_NAMES) else f"ax{d}" for d in range(len(dims))]
    else:
        raise DeclarationError(
            f"compute '{name}': shape {list(dims)} has {len(dims)} dimension(s) "
            f"but fcompute takes {len(params)}"
        )
    axis = tuple(IterVar(n, "int32", 0, e, IterVarKind.SPATIAL) for n, e in zip(names, dims, strict=True))
    body = convert(fcompute(*axis))
    reduce_axes = _check_body(name, body)
    op = ComputeOp(name, axis, reduce_axes, body, tag, dict(attrs or {}))
    return _make_output(op, dims, body.dtype)


def _check_body(name: str, body: Expr) -> tuple[IterVar, ...]:
    """Return the body's reduction axes; a Reduce is allowed only at the top of the body."""
    nested = [n for n in post_order(body) if isinstance(n, Reduce) and n is not body]
    if nested:
        raise DeclarationError(
            f"compute '{name}': a reduction ({nested[0].reducer.name}) must be the whole body, "
            "not part of a larger expression; declare it as its own compute"
        )
    if isinstance(body, Reduce):
        names = [a.name for a in body.axis]
        if len(set(names)) != len(names):
            raise DeclarationError(f"compute '{name}': reduction axes {names} repeat a name")
        return body.axis
    return ()


# ------------------------------------------------------------------------------------------
# reducers


def comm_reducer(
    fcombine: Callable[[Expr, Expr], Expr],
    fidentity: Callable[[str], ExprLike],
    name: str = "reduce",
) -> Callable[..., Expr]:
    """Declare a commutative reducer, as TVM's ``te.comm_reducer``.

    Returns ``reducer(expr, axis, where=None)``. ``fidentity(dtype)`` gives the identity.
    """
    reducer = CommReducer(name, fcombine, lambda dtype: convert(fidentity(dtype), dtype))
    return _reduction_function(reducer)


def _reduction_function(
    reducer: CommReducer, elementwise: Callable[[Expr, Expr], Expr] | None = None
) -> Callable[..., Expr]:
    def reduce(expr: ExprLike, axis: Any = None, where: ExprLike | None = None) -> Expr:
        if elementwise is not None and axis is not None and not _is_axis_spec(axis):
            return elementwise(convert(expr), axis)
        if axis is None:
            raise DeclarationError(f"te.{reducer.name} needs axis= (a reduce_axis or a list of them)")
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        for a in axes:
            if not isinstance(a, IterVar) or a.kind is not IterVarKind.REDUCE:
                raise DeclarationError(f"te.{reducer.name}: axis {a} is not a te.reduce_axis")
        source = convert(expr)
        condition = None if where is None else as_bool(convert(where))
        return Reduce(reducer, source, axes, condition)

    reduce.__name__ = reducer.name
    reduce.__doc__ = f"Reduce with {reducer.name} over axis (or, with two expressions, elementwise)."
    return reduce


def _is_axis_spec(axis: Any) -> bool:
    if isinstance(axis, (list, tuple)):
        return builtins.all(isinstance(a, IterVar) and a.kind is IterVarKind.REDUCE for a in axis)
    return isinstance(axis, IterVar) and axis.kind is IterVarKind.REDUCE


def _min_value(dtype: str) -> Expr:
    import numpy as np

    if dt.is_float(dtype):
        return const(-float("inf"), dtype)
    if dt.is_bool(dtype):
        return const(False, dtype)
    return const(int(np.iinfo(dtype).min), dtype)


def _max_value(dtype: str) -> Expr:
    import numpy as np

    if dt.is_float(dtype):
        return const(float("inf"), dtype)
    if dt.is_bool(dtype):
        return const(True, dtype)
    return const(int(np.iinfo(dtype).max), dtype)


SUM = CommReducer("sum", lambda x, y: x + y, lambda dtype: const(0, dtype))
PROD = CommReducer("prod", lambda x, y: x * y, lambda dtype: const(1, dtype))
MAX = CommReducer("max", max_expr, _min_value)
MIN = CommReducer("min", min_expr, _max_value)

sum = _reduction_function(SUM)  # noqa: A001 - TVM's name
prod = _reduction_function(PROD)
max = _reduction_function(MAX, max_expr)  # noqa: A001 - te.max(a, b) is elementwise, as in TVM
min = _reduction_function(MIN, min_expr)  # noqa: A001


# ------------------------------------------------------------------------------------------
# expression helpers re-exported for declarations


def if_then_else(cond: ExprLike, true_value: ExprLike, false_value: ExprLike) -> Expr:
    """``cond ? true_value : false_value``; the untaken side is never evaluated."""
    return select(cond, true_value, false_value)


def all(*conds: ExprLike) -> Expr:  # noqa: A001 - TVM's name
    """Logical and of one or more conditions."""
    if not conds:
        raise DeclarationError("te.all needs at least one condition")
    result = as_bool(convert(conds[0]))
    for c in conds[1:]:
        result = binary(BinaryOp.AND, result, c)
    return result


def any(*conds: ExprLike) -> Expr:  # noqa: A001 - TVM's name
    """Logical or of one or more conditions."""
    if not conds:
        raise DeclarationError("te.any needs at least one condition")
    result = as_bool(convert(conds[0]))
    for c in conds[1:]:
        result = binary(BinaryOp.OR, result, c)
    return result


def floordiv(a: ExprLike, b: ExprLike) -> Expr:
    return binary(BinaryOp.FLOORDIV, a, b)


def floormod(a: ExprLike, b: ExprLike) -> Expr:
    return binary(BinaryOp.FLOORMOD, a, b)


def _unary(name: str) -> Callable[[ExprLike], Expr]:
    def f(x: ExprLike) -> Expr:
        return call(name, x)

    f.__name__ = name
    return f


exp = _unary("exp")
exp2 = _unary("exp2")
log = _unary("log")
log2 = _unary("log2")
log10 = _unary("log10")
sqrt = _unary("sqrt")
rsqrt = _unary("rsqrt")
tanh = _unary("tanh")
sigmoid = _unary("sigmoid")
erf = _unary("erf")
abs = _unary("abs")  # noqa: A001
floor = _unary("floor")
ceil = _unary("ceil")
round = _unary("round")  # noqa: A001
trunc = _unary("trunc")
sin = _unary("sin")
cos = _unary("cos")


def power(a: ExprLike, b: ExprLike) -> Expr:
    return call("pow", a, b)


pow = power  # noqa: A001 - TVM spells it te.power; tvm.tir.pow too


def fmod(a: ExprLike, b: ExprLike) -> Expr:
    return call("fmod", a, b)


__all__ = [
    "ComputeOp",
    "DeclarationError",
    "Expr",
    "IterVar",
    "Operation",
    "PlaceholderOp",
    "Tensor",
    "abs",
    "all",
    "any",
    "cast",
    "ceil",
    "comm_reducer",
    "compute",
    "const",
    "cos",
    "erf",
    "exp",
    "exp2",
    "floor",
    "floordiv",
    "floormod",
    "fmod",
    "if_then_else",
    "log",
    "log2",
    "log10",
    "max",
    "min",
    "placeholder",
    "pow",
    "power",
    "prod",
    "reduce_axis",
    "round",
    "rsqrt",
    "sigmoid",
    "sin",
    "sqrt",
    "sum",
    "tanh",
    "trunc",
]

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
import functools
import inspect
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from ir import dtype as dt
from ir.expr import (
    Binary,
    BinaryOp,
    Cast,
    CommReducer,
    Const,
    Expr,
    ExprLike,
    IterVar,
    IterVarKind,
    Reduce,
    Select,
    TensorRead,
    TupleReducer,
    as_bool,
    binary,
    call,
    cast,
    children,
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
    def outputs(self) -> tuple[Tensor, ...]:
        """Every output tensor: one, or one per element of a tuple reduction."""
        return self._outputs  # type: ignore[attr-defined, no-any-return]

    @property
    def num_outputs(self) -> int:
        return 1

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
    """``name(axis) = body``; ``body`` may be a Reduce over ``reduce_axis``. A tuple
    reduction (``body`` a Reduce with several ``sources``, TVM's multi-output compute) has
    one output tensor per source, ``name.v0``, ``name.v1``, ...; ``body`` is the Reduce of
    value 0 and holds every source."""

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
    def num_outputs(self) -> int:
        return len(self.body.sources) if isinstance(self.body, Reduce) and self.body.is_tuple else 1

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtype of each output."""
        if isinstance(self.body, Reduce) and self.body.is_tuple:
            return tuple(s.dtype for s in self.body.sources)
        return (self.body.dtype,)

    @property
    def input_tensors(self) -> list[Tensor]:
        """Tensors read by the body, each once, in first-read order."""
        return list(self._input_tensors)

    @functools.cached_property
    def _input_tensors(self) -> tuple[Tensor, ...]:
        # the body never changes (the op is frozen) and the search asks for every stage's
        # inputs thousands of times per round (compute locations, bound inference)
        seen: dict[int, Tensor] = {}
        for node in post_order(self.body):
            if isinstance(node, TensorRead) and id(node.tensor.op) not in seen:
                seen[id(node.tensor.op)] = node.tensor
        return tuple(seen.values())

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
        """The op's name; ``name.v<i>`` for output i of an op with several (as TVM)."""
        return self.op.name if self.op.num_outputs == 1 else f"{self.op.name}.v{self.value_index}"

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
    """The shape as a tuple of Python ints; numpy integers (``np.int64(4)``, an array's
    ``.shape`` entries) are accepted and converted."""
    given: tuple[Any, ...]
    if isinstance(shape, (int, numbers.Integral)):
        given = (shape,)
    else:
        given = tuple(shape)
    for extent in given:
        if not isinstance(extent, numbers.Integral) or isinstance(extent, bool) or extent < 1:
            raise DeclarationError(
                f"{what}: shape {list(given)} must hold positive integers, got {extent!r} "
                f"of type {type(extent).__name__}"
            )
    return tuple(int(extent) for extent in given)


def _make_output(op: Operation, shape: tuple[int, ...], dtype: str) -> Tensor:
    tensor = Tensor(op, shape, dtype)
    object.__setattr__(op, "_output", tensor)
    object.__setattr__(op, "_outputs", (tensor,))
    return tensor


def _make_outputs(op: ComputeOp) -> list[Tensor]:
    """The output tensors of a compute op, one per output (value_index 0, 1, ...)."""
    tensors = [Tensor(op, op.shape, dtype, n) for n, dtype in enumerate(op.dtypes)]
    object.__setattr__(op, "_output", tensors[0])
    object.__setattr__(op, "_outputs", tuple(tensors))
    return tensors


def placeholder(shape: Sequence[int] | int, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of static ``shape``."""
    dims = _check_shape(shape, f"placeholder '{name}'")
    dt.check_dtype(dtype)
    return _make_output(PlaceholderOp(name, dims, dtype), dims, dtype)


def reduce_axis(dom: tuple[int, int], name: str = "rv") -> IterVar:
    """A reduction axis ranging over ``dom = (begin, end)``, end exclusive."""
    begin, end = dom
    integers = builtins.all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in dom)
    if not integers or end <= begin:
        raise DeclarationError(f"reduce_axis '{name}': range {dom} must be two integers with begin < end")
    return IterVar(name, "int32", int(begin), int(end) - int(begin), IterVarKind.REDUCE)


_AXIS_NAMES = ("i", "j", "k", "l", "m", "n", "o", "p")


@overload
def compute(
    shape: Sequence[int] | int,
    fcompute: Callable[..., tuple[Any, ...] | list[Any]],
    name: str = "compute",
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> list[Tensor]: ...


@overload
def compute(
    shape: Sequence[int] | int,
    fcompute: Callable[..., ExprLike],
    name: str = "compute",
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> Tensor: ...


def compute(
    shape: Sequence[int] | int,
    fcompute: Callable[..., Any],
    name: str = "compute",
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> Tensor | list[Tensor]:
    """``name[axis] = fcompute(*axis)``; the lambda's parameter names name the axes.
    When fcompute returns the tuple of a tuple reducer, the op has one output per element
    and this returns their tensors as a list (TVM)."""
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
    value = fcompute(*axis)
    body = _tuple_body(name, value) if isinstance(value, (tuple, list)) else convert(value)
    reduce_axes = _check_body(name, body)
    message = _misplaced_axis(name, axis, body) or _out_of_bounds_read(name, body)
    if message is not None:
        raise DeclarationError(message)
    op = ComputeOp(name, axis, reduce_axes, body, tag, dict(attrs or {}))
    if op.num_outputs > 1:
        return _make_outputs(op)
    return _make_output(op, dims, body.dtype)


def _tuple_body(name: str, values: Sequence[Any]) -> Reduce:
    """The body of a compute returning a tuple: it must be the whole result of one tuple
    reduction (TVM checks the same), whose value-0 Reduce becomes the op's body."""
    first = values[0] if values else None
    if (
        not isinstance(first, Reduce)
        or not first.is_tuple
        or len(values) != len(first.sources)
        or not builtins.all(
            isinstance(v, Reduce) and v.sources is first.sources and v.value_index == n
            for n, v in enumerate(values)
        )
    ):
        raise DeclarationError(
            f"compute '{name}': fcompute returned a tuple of {len(values)} value(s); a tuple body "
            "must be the whole result of one tuple reducer (te.comm_reducer over tuples)"
        )
    return first


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
# checks of a compute body: errors a build would hit late, or never
#
# ``_misplaced_axis``: every axis the body uses is one of the op's own axes, and a reduce
# axis appears only inside a reduction over it (TVM reports both only when lowering).
# ``_out_of_bounds_read``: no read indexes a tensor outside its shape for every value of the
# axes (``A[i + 1]`` over A's whole extent would compile to a load one element past A).
#
# The bound of an index is computed exactly or not at all: an index affine in the axes
# (``i + 1``, ``2*i - k``, a constant), possibly through ``//`` and ``%`` by positive
# constants (``(i + 3) // 2``), reaches its minimum and maximum at corners of the axes' box
# when every axis occurs in one term only, so a read outside the tensor is one that some
# iteration really makes. Any other index (``A[Idx[i]]``, ``min(i, n)``, ``i*i``) is not
# judged; nor is a read inside a branch of ``if_then_else``, under a reduction's ``where``
# or right of a ``&&``/``||`` (``te.all(i >= 1, A[i - 1] > 0)``, which the reference
# short-circuits): the condition is what keeps padding reads (``i >= 1 ? A[i - 1] : 0``,
# TVM's ``topi.nn.pad``) inside the tensor. Each check returns an error message or None.


def _misplaced_axis(op_name: str, axis: Sequence[IterVar], body: Expr) -> str | None:
    """A message for the first axis ``body`` uses outside its place: a spatial axis that
    is not one of ``axis`` (it belongs to another compute), or a reduce axis outside a
    reduction that reduces over it."""
    own = {id(a) for a in axis}
    for var, bound in _vars_with_bound_axes(body, frozenset()):
        if var.kind is IterVarKind.SPATIAL and id(var) not in own:
            names = ", ".join(a.name for a in axis)
            return (
                f"compute '{op_name}': axis '{var.name}' is not an axis of this compute (its axes: "
                f"{names}); it belongs to another te.compute"
            )
        if var.kind is IterVarKind.REDUCE and id(var) not in bound:
            return (
                f"compute '{op_name}': reduce axis '{var.name}' is used outside a reduction over it; "
                f"read it only inside te.sum/te.max/... (..., axis={var.name})"
            )
    return None


def _vars_with_bound_axes(e: Expr, bound: frozenset[int]) -> Iterator[tuple[IterVar, frozenset[int]]]:
    """Each IterVar of ``e`` with the ids of the reduce axes bound where it occurs."""
    if isinstance(e, IterVar):
        yield e, bound
        return
    if isinstance(e, Reduce):
        bound = bound | {id(a) for a in e.axis}
    for child in children(e):
        yield from _vars_with_bound_axes(child, bound)


def _out_of_bounds_read(op_name: str, body: Expr) -> str | None:
    """A message for the first unguarded read of ``body`` whose index, over the whole
    range of the axes, provably leaves its tensor's extent in some dimension."""
    for read in _unguarded_reads(body):
        for dim, (index, extent) in enumerate(zip(read.indices, read.tensor.shape, strict=True)):
            bounds = _index_bounds(index)
            if bounds is None:
                continue
            lo, hi = bounds
            if lo < 0 or hi >= extent:
                return (
                    f"compute '{op_name}': read {read} indexes dimension {dim} of tensor "
                    f"'{read.tensor.name}' with {index} in [{lo}, {hi}], outside its extent {extent} "
                    f"(valid 0..{extent - 1}); shrink the compute's shape or guard the read with "
                    "te.if_then_else"
                )
    return None


def _unguarded_reads(e: Expr) -> Iterator[TensorRead]:
    """The TensorReads of ``e`` that no select branch, reduction condition or left operand
    of ``&&``/``||`` guards (indices of a read included)."""
    if isinstance(e, TensorRead):
        yield e
    if isinstance(e, Select):
        yield from _unguarded_reads(e.cond)
        return
    if isinstance(e, Binary) and e.op in (BinaryOp.AND, BinaryOp.OR):  # te.all(i >= 1, A[i - 1] > 0)
        yield from _unguarded_reads(e.a)
        return
    if isinstance(e, Reduce) and e.condition is not None:
        yield from _unguarded_reads(e.condition)
        return
    for child in children(e):
        yield from _unguarded_reads(child)


# ------------------------------------------------------------------------------------------
# exact bounds of affine indices


@dataclass
class _Affine:
    """``const + sum coef * atom``; each atom (an axis, or ``x // c`` / ``x % c``) has exact
    bounds [lo, hi] and depends on the axes ``deps`` (ids)."""

    const: int = 0
    terms: dict[int, tuple[int, int, int, frozenset[int]]] = field(default_factory=dict)

    def add(self, other: _Affine, sign: int) -> _Affine:
        terms = dict(self.terms)
        for key, (coef, lo, hi, deps) in other.terms.items():
            old = terms.get(key)
            terms[key] = (sign * coef + (old[0] if old else 0), lo, hi, deps)
        return _Affine(self.const + sign * other.const, terms)

    def scale(self, factor: int) -> _Affine:
        terms = {k: (c * factor, lo, hi, d) for k, (c, lo, hi, d) in self.terms.items()}
        return _Affine(self.const * factor, terms)

    def bounds(self) -> tuple[int, int, frozenset[int]] | None:
        """(min, max, axes) over the axes' box, when both are reached (no axis in two
        terms); else None."""
        lo = hi = self.const
        deps: frozenset[int] = frozenset()
        for coef, a_lo, a_hi, a_deps in self.terms.values():
            if coef == 0:
                continue
            if deps & a_deps:
                return None
            deps |= a_deps
            lo += builtins.min(coef * a_lo, coef * a_hi)
            hi += builtins.max(coef * a_lo, coef * a_hi)
        return lo, hi, deps


def _index_bounds(index: Expr) -> tuple[int, int] | None:
    """The exact (min, max) of an integer index over its axes' ranges, or None when the
    index is not of the affine form above."""
    affine = _affine(index)
    bounds = None if affine is None else affine.bounds()
    return None if bounds is None else (bounds[0], bounds[1])


def _affine(e: Expr) -> _Affine | None:
    if isinstance(e, Const) and dt.is_int(e.dtype):
        return _Affine(int(e.value))
    if isinstance(e, IterVar):
        last = e.dom_min + e.extent - 1
        return _Affine(0, {id(e): (1, e.dom_min, last, frozenset({id(e)}))})
    if isinstance(e, Cast) and dt.is_int(e.dtype) and dt.is_int(e.value.dtype):
        return _affine(e.value)
    if not isinstance(e, Binary):
        return None
    a, b = _affine(e.a), _affine(e.b)
    if a is None or b is None:
        return None
    if e.op in (BinaryOp.ADD, BinaryOp.SUB):
        return a.add(b, 1 if e.op is BinaryOp.ADD else -1)
    if e.op is BinaryOp.MUL:
        if not b.terms:
            return a.scale(b.const)
        if not a.terms:
            return b.scale(a.const)
        return None
    if e.op in (BinaryOp.FLOORDIV, BinaryOp.FLOORMOD) and not b.terms and b.const > 0:
        return _div_atom(e, a, b.const)
    return None


def _div_atom(e: Binary, x: _Affine, c: int) -> _Affine | None:
    """``x // c`` or ``x % c`` as one atom: floor division is monotone, so its bounds are
    those of x divided; a modulo is monotone only while x stays in one block of c."""
    bounds = x.bounds()
    if bounds is None:
        return None
    lo, hi, deps = bounds
    if e.op is BinaryOp.FLOORDIV:
        atom = (1, lo // c, hi // c, deps)
    elif lo // c == hi // c:
        atom = (1, lo % c, hi % c, deps)
    else:
        return None
    if not deps:
        return _Affine(atom[1])
    return _Affine(0, {id(e): atom})


# ------------------------------------------------------------------------------------------
# reducers


def comm_reducer(
    fcombine: Callable[[Any, Any], Any],
    fidentity: Callable[..., Any],
    name: str = "reduce",
) -> Callable[..., Any]:
    """Declare a commutative reducer, as TVM's ``te.comm_reducer``.

    Returns ``reducer(expr, axis, where=None)``. ``fidentity(dtype)`` gives the identity.
    Called with a tuple ``expr`` it is a tuple reducer, as in TVM: ``fcombine(xs, ys)``
    combines two tuples into one, ``fidentity(*dtypes)`` gives the identity tuple, and the
    call gives a tuple of Reduce values that ``te.compute`` returns as several tensors:

        argmax = te.comm_reducer(
            lambda x, y: (te.if_then_else(x[1] >= y[1], x[0], y[0]), te.max(x[1], y[1])),
            lambda t0, t1: (te.const(-1, t0), te.const(float("-inf"), t1)), name="argmax")
        idx, val = te.compute((m,), lambda i: argmax((k, A[i, k]), axis=k), name="T")
    """
    reducer = CommReducer(name, fcombine, lambda dtype: convert(fidentity(dtype), dtype))
    scalar_reduce = _reduction_function(reducer)

    def combine_tuple(xs: tuple[Expr, ...], ys: tuple[Expr, ...]) -> tuple[Expr, ...]:
        return tuple(convert(z) for z in fcombine(xs, ys))

    def identity_tuple(dtypes: tuple[str, ...]) -> tuple[Expr, ...]:
        values = fidentity(*dtypes)
        return tuple(convert(v, d) for v, d in zip(values, dtypes, strict=True))

    tuple_reducer = TupleReducer.make(name, combine_tuple, identity_tuple)

    def reduce(expr: Any, axis: Any = None, where: ExprLike | None = None) -> Any:
        if isinstance(expr, (tuple, list)):
            return _tuple_reduce(tuple_reducer, expr, axis, where)
        return scalar_reduce(expr, axis, where)

    reduce.__name__ = name
    reduce.__doc__ = f"Reduce with {name} over axis; a tuple of expressions reduces them together."
    return reduce


def _tuple_reduce(
    reducer: TupleReducer, exprs: Sequence[ExprLike], axis: Any, where: ExprLike | None
) -> tuple[Reduce, ...]:
    """One Reduce per element of ``exprs`` (value_index 0, 1, ...), sharing the sources:
    what a compute returning them stores in one loop nest (TVM's tuple reduction)."""
    if len(exprs) < 2:
        raise DeclarationError(f"te.{reducer.name}: a tuple reduction needs 2 or more values, got {exprs!r}")
    axes = _reduce_axes(reducer, axis)
    sources = tuple(convert(e) for e in exprs)
    dtypes = tuple(s.dtype for s in sources)
    _, _, combined = reducer.combine_exprs(dtypes)
    identity = reducer.identity_tuple(dtypes)
    for what, values in (("fcombine", combined), ("fidentity", identity)):
        got = tuple(v.dtype for v in values)
        if got != dtypes:
            raise DeclarationError(
                f"te.{reducer.name}: {what} gives values of dtypes {list(got)}, but the reduced "
                f"values have dtypes {list(dtypes)}"
            )
    condition = None if where is None else as_bool(convert(where))
    return tuple(Reduce(reducer, s, axes, condition, sources, n) for n, s in enumerate(sources))


def _reduction_function(
    reducer: CommReducer, elementwise: Callable[[Expr, Expr], Expr] | None = None
) -> Callable[..., Expr]:
    def reduce(expr: ExprLike, axis: Any = None, where: ExprLike | None = None) -> Expr:
        if elementwise is not None and axis is not None and not _is_axis_spec(axis):
            return elementwise(convert(expr), axis)
        axes = _reduce_axes(reducer, axis)
        source = convert(expr)
        condition = None if where is None else as_bool(convert(where))
        return Reduce(reducer, source, axes, condition)

    reduce.__name__ = reducer.name
    reduce.__doc__ = f"Reduce with {reducer.name} over axis (or, with two expressions, elementwise)."
    return reduce


def _reduce_axes(reducer: CommReducer, axis: Any) -> tuple[IterVar, ...]:
    if axis is None:
        raise DeclarationError(f"te.{reducer.name} needs axis= (a reduce_axis or a list of them)")
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    for a in axes:
        if not isinstance(a, IterVar) or a.kind is not IterVarKind.REDUCE:
            raise DeclarationError(f"te.{reducer.name}: axis {a} is not a te.reduce_axis")
    return axes


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

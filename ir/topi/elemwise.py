"""Elementwise and broadcast operators (TVM's ``topi`` elemwise/broadcast/``nn.relu``...).

Each is one compute op, tagged "elemwise" (same shape in and out) or "broadcast" (numpy
broadcasting: shapes align on the right, an extent of 1 stretches). Ansor inlines such ops
into their consumers or fuses them into their producer's tile (paper section 4.1), so
the network builders lean on them for every activation, residual add and BN scale.

A binary operator takes tensors or Python scalars; a scalar takes the tensor's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ir import dtype as dt
from ir import te
from ir.expr import Expr, ExprLike, IterVar, const, convert, max_expr, min_expr
from ir.te import Tensor
from ir.topi.utils import TopiError, ax_names, compute_named, normalize_axis

Operand = Tensor | int | float


def elemwise(x: Tensor, f: Callable[[Expr], ExprLike], name: str, tag: str = "elemwise") -> Tensor:
    """``out[idx] = f(x[idx])`` over the whole shape of ``x``."""
    return compute_named(x.shape, ax_names(x.ndim), lambda idx: f(x[idx]), name=name, tag=tag)


def relu(x: Tensor, name: str = "T_relu") -> Tensor:
    """``max(x, 0)``."""
    return elemwise(x, lambda v: max_expr(v, const(0, x.dtype)), name)


def leaky_relu(x: Tensor, alpha: float, name: str = "T_leaky_relu") -> Tensor:
    """``x > 0 ? x : alpha * x``."""
    return elemwise(x, lambda v: te.if_then_else(v > const(0, x.dtype), v, v * alpha), name)


def clip(x: Tensor, a_min: float, a_max: float, name: str = "T_clip") -> Tensor:
    """``min(max(x, a_min), a_max)``; ReLU6 is ``clip(x, 0, 6)``."""
    if a_min > a_max:
        raise TopiError(f"clip '{name}': a_min {a_min} is larger than a_max {a_max}")
    lo, hi = convert(a_min, x.dtype), convert(a_max, x.dtype)
    return elemwise(x, lambda v: min_expr(max_expr(v, lo), hi), name)


def gelu(x: Tensor, approximate: str = "none", name: str = "T_gelu") -> Tensor:
    """BERT's GELU in erf form: ``0.5 * x * (1 + erf(x / sqrt(2)))``; with
    ``approximate="tanh"`` the tanh form ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``
    (ONNX Gelu's two modes)."""
    if approximate == "none":
        return elemwise(x, lambda v: v * 0.5 * (te.erf(v * (1.0 / math.sqrt(2.0))) + 1.0), name)
    if approximate == "tanh":
        scale = math.sqrt(2.0 / math.pi)
        return elemwise(x, lambda v: v * 0.5 * (te.tanh((v + v * v * v * 0.044715) * scale) + 1.0), name)
    raise TopiError(f"gelu '{name}': approximate {approximate!r} must be 'none' or 'tanh'")


def tanh(x: Tensor, name: str = "T_tanh") -> Tensor:
    return elemwise(x, te.tanh, name)


def sigmoid(x: Tensor, name: str = "T_sigmoid") -> Tensor:
    """``1 / (1 + exp(-x))``, as the sigmoid intrinsic."""
    return elemwise(x, te.sigmoid, name)


def erf(x: Tensor, name: str = "T_erf") -> Tensor:
    return elemwise(x, te.erf, name)


def exp(x: Tensor, name: str = "T_exp") -> Tensor:
    return elemwise(x, te.exp, name)


def sqrt(x: Tensor, name: str = "T_sqrt") -> Tensor:
    return elemwise(x, te.sqrt, name)


def negative(x: Tensor, name: str = "T_negative") -> Tensor:
    return elemwise(x, lambda v: -v, name)


def cast(x: Tensor, dtype: str, name: str = "T_cast") -> Tensor:
    return elemwise(x, lambda v: v.astype(dtype), name)


# ------------------------------------------------------------------------------------------
# broadcasting binary operators


def broadcast_shape(a: Sequence[int], b: Sequence[int], op: str) -> tuple[int, ...]:
    """numpy's broadcast of two shapes, or a TopiError naming the dimensions that clash."""
    rank = max(len(a), len(b))
    pa = (1,) * (rank - len(a)) + tuple(a)
    pb = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for d, (x, y) in enumerate(zip(pa, pb, strict=True)):
        if x != y and 1 not in (x, y):
            raise TopiError(
                f"{op}: shapes {list(a)} and {list(b)} do not broadcast (dimension {d}: {x} vs {y})"
            )
        out.append(max(x, y))
    return tuple(out)


def broadcast_read(t: Tensor, idx: Sequence[Expr], out_shape: Sequence[int]) -> Expr:
    """``t`` read at the output index ``idx``: dimensions align on the right and an
    extent of 1 that was stretched is read at 0."""
    offset = len(out_shape) - t.ndim
    index: list[ExprLike] = []
    for d, extent in enumerate(t.shape):
        index.append(0 if extent == 1 and out_shape[offset + d] != 1 else idx[offset + d])
    return t[tuple(index)]


def broadcast_binary(a: Operand, b: Operand, f: Callable[[Expr, Expr], Expr], name: str, op: str) -> Tensor:
    """``out = f(a, b)`` with numpy broadcasting; at least one side is a tensor."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TopiError(f"{op}: needs at least one tensor operand, got {a!r} and {b!r}")
    shape_a = a.shape if isinstance(a, Tensor) else ()
    shape_b = b.shape if isinstance(b, Tensor) else ()
    out_shape = broadcast_shape(shape_a, shape_b, op)
    same = isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape

    def side(t: Operand, idx: tuple[IterVar, ...], other: Operand) -> Expr:
        if isinstance(t, Tensor):
            return broadcast_read(t, idx, out_shape)
        like = other.dtype if isinstance(other, Tensor) else None
        return convert(t, like)

    return compute_named(
        out_shape,
        ax_names(len(out_shape)),
        lambda idx: f(side(a, idx, b), side(b, idx, a)),
        name=name,
        tag="elemwise" if same else "broadcast",
    )


def add(a: Operand, b: Operand, name: str = "T_add") -> Tensor:
    return broadcast_binary(a, b, lambda x, y: x + y, name, "add")


def subtract(a: Operand, b: Operand, name: str = "T_subtract") -> Tensor:
    return broadcast_binary(a, b, lambda x, y: x - y, name, "subtract")


def multiply(a: Operand, b: Operand, name: str = "T_multiply") -> Tensor:
    return broadcast_binary(a, b, lambda x, y: x * y, name, "multiply")


def divide(a: Operand, b: Operand, name: str = "T_divide") -> Tensor:
    """True division on float dtypes; on integers the quotient truncated toward zero (C's
    and ONNX's ``/``, TVM's ``truncdiv``): the floor quotient plus one where the division
    is inexact and the operands' signs differ (a zero divisor gives 0)."""
    return broadcast_binary(a, b, _divide_expr, name, "divide")


def _divide_expr(x: Expr, y: Expr) -> Expr:
    if dt.is_float(x.dtype):
        return x / y
    floor = te.floordiv(x, y)
    zero = const(0, x.dtype)
    inexact = te.all(te.floormod(x, y) != zero, (x < zero) != (y < zero))
    return te.if_then_else(inexact, floor + const(1, x.dtype), floor)


def power(a: Operand, b: Operand, name: str = "T_power") -> Tensor:
    """``a ** b``; integer operands go through float64 (exact while the result stays below
    2**53) and the result is truncated back to their dtype."""
    return broadcast_binary(a, b, _power_expr, name, "power")


def _power_expr(x: Expr, y: Expr) -> Expr:
    if dt.is_float(x.dtype):
        return te.power(x, y)
    return te.power(x.astype("float64"), y.astype("float64")).astype(x.dtype)


def equal(a: Operand, b: Operand, name: str = "T_equal") -> Tensor:
    """``a == b`` elementwise, a bool tensor."""
    return broadcast_binary(a, b, lambda x, y: x == y, name, "equal")


def less(a: Operand, b: Operand, name: str = "T_less") -> Tensor:
    """``a < b`` elementwise, a bool tensor (false where either side is NaN)."""
    return broadcast_binary(a, b, lambda x, y: x < y, name, "less")


def less_equal(a: Operand, b: Operand, name: str = "T_less_equal") -> Tensor:
    """``a <= b`` elementwise, a bool tensor."""
    return broadcast_binary(a, b, lambda x, y: x <= y, name, "less_equal")


def greater(a: Operand, b: Operand, name: str = "T_greater") -> Tensor:
    """``a > b`` elementwise, a bool tensor."""
    return broadcast_binary(a, b, lambda x, y: x > y, name, "greater")


def greater_equal(a: Operand, b: Operand, name: str = "T_greater_equal") -> Tensor:
    """``a >= b`` elementwise, a bool tensor."""
    return broadcast_binary(a, b, lambda x, y: x >= y, name, "greater_equal")


def _check_bool(op: str, name: str, *operands: Operand) -> None:
    for t in operands:
        if isinstance(t, Tensor) and not dt.is_bool(t.dtype):
            raise TopiError(f"{op} '{name}': operand '{t.name}' has dtype {t.dtype}, not bool")


def logical_and(a: Operand, b: Operand, name: str = "T_logical_and") -> Tensor:
    """``a && b`` on bool tensors, with broadcasting."""
    _check_bool("logical_and", name, a, b)
    return broadcast_binary(a, b, lambda x, y: te.all(x, y), name, "logical_and")


def logical_or(a: Operand, b: Operand, name: str = "T_logical_or") -> Tensor:
    """``a || b`` on bool tensors, with broadcasting."""
    _check_bool("logical_or", name, a, b)
    return broadcast_binary(a, b, lambda x, y: te.any(x, y), name, "logical_or")


def logical_not(x: Tensor, name: str = "T_logical_not") -> Tensor:
    """``!x`` on a bool tensor."""
    _check_bool("logical_not", name, x)
    return elemwise(x, lambda v: ~v, name)


def where(cond: Tensor, x: Tensor, y: Tensor, name: str = "T_where") -> Tensor:
    """``cond ? x : y`` with the three shapes broadcast together (numpy's ``where``);
    ``cond`` is a bool tensor, ``x`` and ``y`` share a dtype."""
    if cond.dtype != "bool":
        raise TopiError(f"where '{name}': condition '{cond.name}' has dtype {cond.dtype}, not bool")
    if x.dtype != y.dtype:
        raise TopiError(f"where '{name}': '{x.name}' is {x.dtype} but '{y.name}' is {y.dtype}")
    out_shape = broadcast_shape(broadcast_shape(cond.shape, x.shape, "where"), y.shape, "where")
    same = cond.shape == x.shape == y.shape

    def body(idx: tuple[IterVar, ...]) -> Expr:
        return te.if_then_else(
            broadcast_read(cond, idx, out_shape),
            broadcast_read(x, idx, out_shape),
            broadcast_read(y, idx, out_shape),
        )

    return compute_named(
        out_shape, ax_names(len(out_shape)), body, name=name, tag="elemwise" if same else "broadcast"
    )


def maximum(a: Operand, b: Operand, name: str = "T_maximum") -> Tensor:
    return broadcast_binary(a, b, max_expr, name, "maximum")


def minimum(a: Operand, b: Operand, name: str = "T_minimum") -> Tensor:
    return broadcast_binary(a, b, min_expr, name, "minimum")


def bias_add(x: Tensor, bias: Tensor, axis: int = 1, name: str = "T_bias_add") -> Tensor:
    """``out[idx] = x[idx] + bias[idx[axis]]`` (relay's ``nn.bias_add``; axis 1 for NCHW,
    -1 for NHWC)."""
    ax = normalize_axis(axis, x.ndim, f"bias_add '{name}'")
    if bias.shape != (x.shape[ax],):
        raise TopiError(
            f"bias_add '{name}': bias shape {list(bias.shape)} must be [{x.shape[ax]}] "
            f"(axis {axis} of data {list(x.shape)})"
        )
    return compute_named(
        x.shape, ax_names(x.ndim), lambda idx: x[idx] + bias[idx[ax]], name=name, tag="broadcast"
    )

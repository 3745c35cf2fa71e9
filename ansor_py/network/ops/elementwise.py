"""The elementwise op family: unary activations and arithmetic, broadcasting binary
arithmetic, the comparisons (``equal``, ``less``...), the logical ops, ``where`` and ``cast``
(ONNX semantics, TVM's ``topi`` elemwise and broadcast operators).

Every op here maps each output element to the input elements at the same (broadcast)
index, so the fusion pass may inline it into any neighbour: unary ops are ``ELEMWISE``
and the broadcasting ones ``BROADCAST`` (TVM's ``TOpPattern`` for the same Relay ops, used
by FuseOps; Ansor then inlines them into their consumer's tile, paper section 4.1).

Typing follows ONNX: the operands of a binary op have one dtype (the frontend inserts
casts where an ONNX model mixes them), the comparisons give ``bool``, the logical ops
(``logical_and``, ``logical_or``, ``logical_not``) take and give ``bool`` and ``where``
takes a bool condition. Integer ``divide`` truncates toward zero, as ONNX ``Div`` (and C) do, where
numpy's ``//`` floors; integer ``power`` goes through float64 (exact below 2**53), which
is what ``declare`` computes too. Broadcasting is numpy's: shapes align on the right and
an extent of 1 stretches; a scalar has shape ().
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ansor_py.network.ops.base import Attrs, OpDef, OpPattern, attr, op_table
from ansor_py.network.types import GraphError, TensorType
from ir import dtype as dt
from ir import te, topi
from ir.te import Tensor

_ERF = np.frompyfunc(math.erf, 1, 1)
_GELU_APPROXIMATIONS = ("none", "tanh")


# ------------------------------------------------------------------------------------------
# shared checks (the tensor family uses broadcast_shapes for broadcast_to)


def broadcast_shapes(op: str, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """numpy's broadcast of ``shapes``, or a GraphError naming the op and the shapes."""
    rank = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out: list[int] = []
    for d in range(rank):
        extents = {p[d] for p in padded} - {1}
        if len(extents) > 1:
            listed = " and ".join(str(list(s)) for s in shapes)
            raise GraphError(
                f"op '{op}': shapes {listed} do not broadcast (dimension {d} of the aligned shapes: "
                f"{sorted(extents)})"
            )
        out.append(extents.pop() if extents else 1)
    return tuple(out)


def check_same_dtype(op: str, types: Sequence[TensorType], first: int = 0) -> str:
    """The common dtype of ``types[first:]``; a GraphError naming both dtypes otherwise."""
    dtype = types[first].dtype
    for n, t in enumerate(types[first + 1 :], start=first + 1):
        if t.dtype != dtype:
            raise GraphError(
                f"op '{op}': operand dtypes differ: input {first} is {dtype}, input {n} is {t.dtype} "
                "(insert a cast)"
            )
    return dtype


def _check_kind(op: str, ttype: TensorType, what: str, allowed: str) -> None:
    """``allowed``: "float" (float dtypes), "numeric" (float or integer), "bool" or "any"."""
    ok = {
        "float": dt.is_float(ttype.dtype),
        "numeric": dt.is_float(ttype.dtype) or dt.is_int(ttype.dtype),
        "bool": dt.is_bool(ttype.dtype),
        "any": True,
    }[allowed]
    if not ok:
        kinds = {"float": "a float dtype", "numeric": "a float or integer dtype", "bool": "bool"}[allowed]
        raise GraphError(f"op '{op}': {what} has dtype {ttype.dtype}, the op needs {kinds}")


# ------------------------------------------------------------------------------------------
# unary ops


def _unary_op(
    name: str,
    kind: str,
    ref: Callable[[np.ndarray], np.ndarray],
    declare: Callable[[Tensor, str], Tensor],
) -> OpDef:
    def infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
        _check_kind(name, types[0], "input 0", kind)
        return [types[0]]

    def reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(arrays[0])
        with np.errstate(all="ignore"):  # exp overflow in sigmoid, sqrt of a negative: inf, nan
            return [np.asarray(ref(x)).astype(x.dtype, copy=False)]

    def declare_fn(attrs: Attrs, tensors: Sequence[Tensor], out_name: str) -> list[Tensor]:
        return [declare(tensors[0], out_name)]

    return OpDef(name, OpPattern.ELEMWISE, infer, reference, declare_fn)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_ERF(x.astype(np.float64)), dtype=np.float64)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


# --- gelu ------------------------------------------------------------------------------


def _gelu_mode(attrs: Attrs) -> str:
    mode = attr(attrs, "approximate", "gelu", "none")
    if mode not in _GELU_APPROXIMATIONS:
        raise GraphError(
            f"op 'gelu': attribute 'approximate' is {mode!r}, expected one of {_GELU_APPROXIMATIONS}"
        )
    return str(mode)


def _gelu_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    _gelu_mode(attrs)
    _check_kind("gelu", types[0], "input 0", "float")
    return [types[0]]


def _gelu_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = np.asarray(arrays[0])
    x64 = x.astype(np.float64)
    if _gelu_mode(attrs) == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64**3)
        out = 0.5 * x64 * (1.0 + np.tanh(inner))
    else:
        out = 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))
    return [out.astype(x.dtype)]


def _gelu_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.gelu(tensors[0], approximate=_gelu_mode(attrs), name=name)]


# --- clip ------------------------------------------------------------------------------


def _clip_bounds(attrs: Attrs, dtype: str) -> tuple[float | int | None, float | int | None]:
    bounds: list[float | int | None] = []
    for key in ("min", "max"):
        given = attr(attrs, key, "clip", None)
        if given is None:
            bounds.append(None)
            continue
        if isinstance(given, bool) or not isinstance(given, numbers.Real) or math.isnan(given):
            raise GraphError(f"op 'clip': attribute '{key}' is {given!r}, expected a number or None")
        value = float(given)
        if dt.is_int(dtype):
            if not value.is_integer() and not math.isinf(value):
                raise GraphError(
                    f"op 'clip': attribute '{key}' {given!r} is not an integer, the input is {dtype}"
                )
            info = np.iinfo(dt.to_numpy(dtype))
            bounds.append(int(min(max(value, info.min), info.max)))
        else:
            bounds.append(value)
    return bounds[0], bounds[1]


def _clip_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    _check_kind("clip", types[0], "input 0", "numeric")
    _clip_bounds(attrs, types[0].dtype)
    return [types[0]]


def _clip_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """ONNX Clip: ``min(max(x, lo), hi)``, so lo > hi gives hi everywhere."""
    x = np.asarray(arrays[0])
    lo, hi = _clip_bounds(attrs, dt.from_numpy(x.dtype))
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return [np.asarray(out, dtype=x.dtype)]


def _clip_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    x = tensors[0]
    lo, hi = _clip_bounds(attrs, x.dtype)

    def body(v: te.Expr) -> te.Expr:
        if lo is not None:
            v = te.max(v, te.const(lo, x.dtype))
        if hi is not None:
            v = te.min(v, te.const(hi, x.dtype))
        return v

    return [topi.elemwise(x, body, name)]


# --- cast ------------------------------------------------------------------------------


def _cast_dtype(attrs: Attrs) -> str:
    dtype = attr(attrs, "dtype", "cast")
    if not isinstance(dtype, str) or dtype not in dt.ALL_DTYPES:
        raise GraphError(
            f"op 'cast': attribute 'dtype' is {dtype!r}, expected one of {', '.join(dt.ALL_DTYPES)}"
        )
    return dtype


def _cast_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    return [TensorType(types[0].shape, _cast_dtype(attrs))]


def _cast_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """numpy's astype: float -> int truncates toward zero, nonzero -> True (ONNX Cast)."""
    return [np.asarray(arrays[0]).astype(dt.to_numpy(_cast_dtype(attrs)))]


def _cast_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.cast(tensors[0], _cast_dtype(attrs), name=name)]


# ------------------------------------------------------------------------------------------
# broadcasting binary ops, comparisons, logical ops, where


def _binary_op(
    name: str,
    kind: str,
    ref: Callable[[np.ndarray, np.ndarray], np.ndarray],
    declare: Callable[[Tensor, Tensor, str], Tensor],
    out_dtype: str | None = None,
) -> OpDef:
    def infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
        dtype = check_same_dtype(name, types)
        _check_kind(name, types[0], "input 0", kind)
        shape = broadcast_shapes(name, [t.shape for t in types])
        return [TensorType(shape, out_dtype or dtype)]

    def reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        a, b = np.asarray(arrays[0]), np.asarray(arrays[1])
        dtype = dt.to_numpy(out_dtype) if out_dtype else a.dtype
        with np.errstate(all="ignore"):
            return [np.asarray(ref(a, b)).astype(dtype, copy=False)]

    def declare_fn(attrs: Attrs, tensors: Sequence[Tensor], out_name: str) -> list[Tensor]:
        return [declare(tensors[0], tensors[1], out_name)]

    return OpDef(name, OpPattern.BROADCAST, infer, reference, declare_fn, arity=(2, 2))


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Div: true division on floats, truncation toward zero on integers (x / 0 is 0
    on integers, as the compiled code gives)."""
    if not np.issubdtype(a.dtype, np.integer):
        return np.asarray(a / b)
    floor = np.floor_divide(a, b)
    inexact = (np.mod(a, b) != 0) & ((a < 0) != (b < 0))
    return np.where(inexact, floor + 1, floor)


def _power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    return np.power(a, b)


def _where_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    if types[0].dtype != "bool":
        raise GraphError(f"op 'where': input 0 (the condition) has dtype {types[0].dtype}, the op needs bool")
    dtype = check_same_dtype("where", types, first=1)
    return [TensorType(broadcast_shapes("where", [t.shape for t in types]), dtype)]


def _where_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    cond, x, y = (np.asarray(a) for a in arrays)
    return [np.asarray(np.where(cond, x, y), dtype=x.dtype)]


def _where_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.where(tensors[0], tensors[1], tensors[2], name=name)]


# ------------------------------------------------------------------------------------------
# the table

ELEMENTWISE_OPS: dict[str, OpDef] = op_table(
    _unary_op("relu", "numeric", _relu, topi.relu),
    _unary_op("sigmoid", "float", _sigmoid, topi.sigmoid),
    _unary_op("tanh", "float", np.tanh, topi.tanh),
    _unary_op("erf", "float", _erf, topi.erf),
    _unary_op("sqrt", "float", np.sqrt, topi.sqrt),
    _unary_op("negative", "numeric", np.negative, topi.negative),
    _unary_op("exp", "float", np.exp, topi.exp),
    OpDef("gelu", OpPattern.ELEMWISE, _gelu_infer, _gelu_reference, _gelu_declare),
    OpDef("clip", OpPattern.ELEMWISE, _clip_infer, _clip_reference, _clip_declare),
    OpDef("cast", OpPattern.ELEMWISE, _cast_infer, _cast_reference, _cast_declare),
    _binary_op("add", "numeric", np.add, topi.add),
    _binary_op("subtract", "numeric", np.subtract, topi.subtract),
    _binary_op("multiply", "numeric", np.multiply, topi.multiply),
    _binary_op("divide", "numeric", _divide, topi.divide),
    _binary_op("power", "numeric", _power, topi.power),
    _binary_op("maximum", "numeric", np.maximum, topi.maximum),
    _binary_op("minimum", "numeric", np.minimum, topi.minimum),
    _binary_op("equal", "any", np.equal, topi.equal, out_dtype="bool"),
    _binary_op("less", "numeric", np.less, topi.less, out_dtype="bool"),
    _binary_op("less_equal", "numeric", np.less_equal, topi.less_equal, out_dtype="bool"),
    _binary_op("greater", "numeric", np.greater, topi.greater, out_dtype="bool"),
    _binary_op("greater_equal", "numeric", np.greater_equal, topi.greater_equal, out_dtype="bool"),
    _unary_op("logical_not", "bool", np.logical_not, topi.logical_not),
    _binary_op("logical_and", "bool", np.logical_and, topi.logical_and),
    _binary_op("logical_or", "bool", np.logical_or, topi.logical_or),
    OpDef("where", OpPattern.BROADCAST, _where_infer, _where_reference, _where_declare, arity=(3, 3)),
)

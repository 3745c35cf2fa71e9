"""Normalisations and reductions: ``batch_norm``, ``layer_norm``, ``softmax`` and
``reduce_mean`` / ``reduce_sum`` / ``reduce_max``.

- ``batch_norm`` (data, gamma, beta, mean, var) {epsilon, axis}: ONNX BatchNormalization in
  inference form, ``(x - mean[c]) / sqrt(var[c] + epsilon) * gamma[c] + beta[c]`` with c the
  index along ``axis`` (1 for NCHW, the last axis for NHWC). BROADCAST, and usually folded
  into the preceding conv by the fold_batch_norm pass.
- ``layer_norm`` (data, gamma, beta) {axis, epsilon}: ONNX LayerNormalization, normalising
  over the axes ``axis .. rank-1``; gamma and beta have the shape of those axes.
- ``softmax`` {axis}: ONNX opset-13 Softmax, along one axis.
- ``reduce_*`` {axes, keepdims}: ONNX ReduceMean/ReduceSum/ReduceMax over distinct axes.

References compute statistics in float64 and round once to the input dtype, so they stay
the accurate oracle for whole networks (BERT's 24 layer norms). Declarations are TVM's
topi compositions (``ir.topi.nn_norm``, ``ir.topi.reduction``); a mean is a sum
``{name}_sum`` and a division ``name``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ansor_py.network.ops.base import Attrs, InferFn, OpDef, OpPattern, attr
from ansor_py.network.ops.nn_common import axes_attr, bool_attr, float_attr, float_input, int_attr, same_dtype
from ansor_py.network.types import GraphError, TensorType
from ir import topi
from ir.te import Tensor
from ir.topi.utils import compute_named

# ------------------------------------------------------------------------------------------
# batch_norm


def _axis(attrs: Attrs, op: str, rank: int, default: int | None = None) -> int:
    axis = int_attr(attrs, "axis", op, 0, ... if default is None else default)
    if axis >= rank:
        raise GraphError(f"{op}: attribute 'axis' = {axis} out of range for input of rank {rank}")
    return axis


def batch_norm_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "batch_norm"
    data = types[0]
    float_input(data, "data", op)
    axis = _axis(attrs, op, data.ndim, 1)
    float_attr(attrs, "epsilon", op, 0.0, 1e-5)
    names = ("data", "gamma", "beta", "mean", "var")
    same_dtype(types, names, op)
    for t, what in zip(types[1:], names[1:], strict=True):
        if t.shape != (data.shape[axis],):
            raise GraphError(
                f"{op}: input '{what}' has shape {list(t.shape)}, expected [{data.shape[axis]}] "
                f"(axis {axis} of {list(data.shape)})"
            )
    return [data]


def batch_norm_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, gamma, beta, mean, var = (a.astype(np.float64) for a in arrays)
    axis = int(attrs.get("axis", 1))
    view = [1] * x.ndim
    view[axis] = -1
    scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    out = (x - mean.reshape(view)) * scale.reshape(view) + beta.reshape(view)
    return [out.astype(arrays[0].dtype)]


def batch_norm_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    x, gamma, beta, mean, var = tensors
    axis, epsilon = int(attrs.get("axis", 1)), float(attrs.get("epsilon", 1e-5))
    return [topi.batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, name=name)]


BATCH_NORM = OpDef(
    "batch_norm", OpPattern.BROADCAST, batch_norm_infer, batch_norm_reference, batch_norm_declare, (5, 5)
)

# ------------------------------------------------------------------------------------------
# layer_norm


def layer_norm_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "layer_norm"
    data = types[0]
    float_input(data, "data", op)
    axis = _axis(attrs, op, data.ndim, data.ndim - 1)
    float_attr(attrs, "epsilon", op, 0.0, 1e-5)
    names = ("data", "gamma", "beta")
    same_dtype(types, names, op)
    for t, what in zip(types[1:], names[1:], strict=True):
        if t.shape != data.shape[axis:]:
            raise GraphError(
                f"{op}: input '{what}' has shape {list(t.shape)}, expected {list(data.shape[axis:])} "
                f"(axes {axis}.. of {list(data.shape)})"
            )
    return [data]


def layer_norm_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, gamma, beta = (a.astype(np.float64) for a in arrays)
    axes = tuple(range(int(attrs.get("axis", x.ndim - 1)), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + float(attrs.get("epsilon", 1e-5))) * gamma + beta
    return [out.astype(arrays[0].dtype)]


def layer_norm_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    x, gamma, beta = tensors
    axes = list(range(int(attrs.get("axis", x.ndim - 1)), x.ndim))
    return [topi.layer_norm(x, gamma, beta, axes, float(attrs.get("epsilon", 1e-5)), name=name)]


LAYER_NORM = OpDef(
    "layer_norm", OpPattern.OPAQUE, layer_norm_infer, layer_norm_reference, layer_norm_declare, (3, 3)
)

# ------------------------------------------------------------------------------------------
# softmax


def softmax_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    float_input(types[0], "data", "softmax")
    _axis(attrs, "softmax", types[0].ndim)
    return [types[0]]


def softmax_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = arrays[0].astype(np.float64)
    axis = int(attrs["axis"])
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [(e / e.sum(axis=axis, keepdims=True)).astype(arrays[0].dtype)]


def softmax_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.softmax(tensors[0], int(attrs["axis"]), name=name)]


SOFTMAX = OpDef("softmax", OpPattern.OPAQUE, softmax_infer, softmax_reference, softmax_declare)

# ------------------------------------------------------------------------------------------
# reductions


def _reduce_infer(op: str) -> InferFn:
    def infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
        data = types[0]
        axes = axes_attr(attrs, "axes", op, data.ndim)
        keepdims = bool_attr(attrs, "keepdims", op, True)
        if op != "reduce_max" and data.dtype == "bool":
            raise GraphError(f"{op}: input 'data' has dtype bool, a numeric dtype is needed")
        if op == "reduce_mean":
            float_input(data, "data", op)
        if not keepdims and len(axes) == data.ndim:
            raise GraphError(
                f"{op}: attribute 'keepdims' = False with axes {axes} reduces every axis of "
                f"{list(data.shape)}; a rank-0 result is not supported (use keepdims)"
            )
        shape = [1 if d in axes else n for d, n in enumerate(data.shape)]
        if not keepdims:
            shape = [n for d, n in enumerate(data.shape) if d not in axes]
        return [TensorType(tuple(shape), data.dtype)]

    return infer


def _reduce_args(attrs: Attrs) -> tuple[tuple[int, ...], bool]:
    axes = attr(attrs, "axes", "reduce")
    return tuple(sorted((axes,) if isinstance(axes, int) else axes)), bool(attrs.get("keepdims", True))


def reduce_sum_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    axes, keepdims = _reduce_args(attrs)
    x = arrays[0]
    acc = np.float64 if x.dtype.kind == "f" else x.dtype
    return [np.asarray(x.sum(axis=axes, keepdims=keepdims, dtype=acc)).astype(x.dtype)]


def reduce_mean_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    axes, keepdims = _reduce_args(attrs)
    x = arrays[0]
    return [np.asarray(x.mean(axis=axes, keepdims=keepdims, dtype=np.float64)).astype(x.dtype)]


def reduce_max_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    axes, keepdims = _reduce_args(attrs)
    return [np.asarray(arrays[0].max(axis=axes, keepdims=keepdims))]


def reduce_sum_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    axes, keepdims = _reduce_args(attrs)
    return [topi.sum(tensors[0], axes, keepdims, name=name)]


def reduce_max_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    axes, keepdims = _reduce_args(attrs)
    return [topi.max(tensors[0], axes, keepdims, name=name)]


def reduce_mean_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    axes, keepdims = _reduce_args(attrs)
    x = tensors[0]
    total = topi.sum(x, axes, keepdims, name=f"{name}_sum")
    count = float(math.prod(x.shape[a] for a in axes))
    names = [f"ax{d}" for d in range(total.ndim)]
    return [compute_named(total.shape, names, lambda idx: total[idx] / count, name=name, tag="elemwise")]


REDUCE_SUM = OpDef(
    "reduce_sum", OpPattern.COMM_REDUCE, _reduce_infer("reduce_sum"), reduce_sum_reference, reduce_sum_declare
)
REDUCE_MEAN = OpDef(
    "reduce_mean",
    OpPattern.COMM_REDUCE,
    _reduce_infer("reduce_mean"),
    reduce_mean_reference,
    reduce_mean_declare,
)
REDUCE_MAX = OpDef(
    "reduce_max", OpPattern.COMM_REDUCE, _reduce_infer("reduce_max"), reduce_max_reference, reduce_max_declare
)

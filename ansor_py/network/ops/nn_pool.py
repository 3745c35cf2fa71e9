"""``max_pool``, ``avg_pool`` and ``global_avg_pool``: ONNX MaxPool, AveragePool and
GlobalAveragePool over 1 to 3 spatial axes, channels first or last.

Attributes: ``layout`` (NCW ... NDHWC), ``kernel``, ``strides``, ``pads`` (ONNX: all begins,
then all ends), ``dilations``, ``ceil_mode`` and, for avg_pool, ``count_include_pad``.

Output extent per spatial axis, as ONNX and onnxruntime compute it::

    out = floor_or_ceil((n + pad_begin + pad_end - ((k - 1) * d + 1)) / s) + 1

and in ceil mode a last window that would start past the input and its begin padding is
dropped (``(out - 1) * s >= n + pad_begin``). The extra positions ceil mode reads past
``pad_end`` hold nothing: they never win a max and are never counted by an average. The
average divides by the taps inside the input (``count_include_pad`` false) or inside the
explicitly padded input (true).

References loop over kernel offsets (not output elements); declarations use
``ir.topi.pool`` and ``global_avg_pool`` (TVM's pooling: a padded input, a reduction
``{name}`` / ``{name}_sum`` and, for averages, a division).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ansor_py.network.ops.base import Attrs, DeclareFn, InferFn, OpDef, OpPattern
from ansor_py.network.ops.nn_common import (
    DATA_LAYOUTS,
    bool_attr,
    check_out,
    choice,
    float_input,
    int_tuple,
    rank_is,
    spatial_axes,
    window_out,
)
from ansor_py.network.types import GraphError, TensorType
from ir import topi
from ir.te import Tensor
from ir.topi.nn_pool import pool_out_size


class PoolAttrs:
    """The validated attributes of a pooling node with ``nsp`` spatial axes."""

    def __init__(self, attrs: Attrs, op: str) -> None:
        self.layout = choice(attrs, "layout", op, DATA_LAYOUTS)
        nsp = len(self.layout) - 2
        self.axes = spatial_axes(self.layout)
        self.kernel = int_tuple(attrs, "kernel", op, nsp, 1)
        self.strides = int_tuple(attrs, "strides", op, nsp, 1, (1,) * nsp)
        pads = int_tuple(attrs, "pads", op, 2 * nsp, 0, (0,) * (2 * nsp))
        self.before, self.after = pads[:nsp], pads[nsp:]
        self.dilations = int_tuple(attrs, "dilations", op, nsp, 1, (1,) * nsp)
        self.ceil_mode = bool_attr(attrs, "ceil_mode", op, False)
        self.count_include_pad = bool_attr(attrs, "count_include_pad", op, False)
        for k, b, a in zip(self.kernel, self.before, self.after, strict=True):
            if b >= k or a >= k:
                raise GraphError(
                    f"{op}: attribute 'pads' = {pads!r} must be smaller than the kernel {self.kernel!r}"
                )

    def out_shape(self, shape: Sequence[int]) -> list[int]:
        out = list(shape)
        for m, d in enumerate(self.axes):
            out[d] = pool_out_size(
                shape[d],
                self.kernel[m],
                self.strides[m],
                self.dilations[m],
                self.before[m],
                self.after[m],
                self.ceil_mode,
            )
        return out


def _pool_infer(op: str) -> InferFn:
    def infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
        p = PoolAttrs(attrs, op)
        rank_is(types[0], len(p.layout), "data", op, p.layout)
        float_input(types[0], "data", op)
        shape = types[0].shape
        floor_sizes = [  # < 1 where the dilated window is larger than the padded input
            window_out(shape[d], k, s, dil, b, a)
            for d, k, s, dil, b, a in zip(
                p.axes, p.kernel, p.strides, p.dilations, p.before, p.after, strict=True
            )
        ]
        check_out(op, floor_sizes, p.layout, shape)
        out = p.out_shape(shape)
        return [TensorType(tuple(out), types[0].dtype)]

    return infer


def _windows(p: PoolAttrs, shape: Sequence[int], out: Sequence[int]) -> list[tuple[slice, ...]]:
    """For each kernel offset, the slice of the padded input it reads for all outputs."""
    result = []
    for offset in np.ndindex(*p.kernel):
        index = [slice(None)] * len(shape)
        for m, d in enumerate(p.axes):
            start = offset[m] * p.dilations[m]
            index[d] = slice(start, start + (out[d] - 1) * p.strides[m] + 1, p.strides[m])
        result.append(tuple(index))
    return result


def _padding(p: PoolAttrs, shape: Sequence[int], out: Sequence[int]) -> list[tuple[int, int]]:
    """np.pad widths: the explicit pads plus what ceil mode reads past the end."""
    widths = [(0, 0)] * len(shape)
    for m, d in enumerate(p.axes):
        needed = (out[d] - 1) * p.strides[m] + (p.kernel[m] - 1) * p.dilations[m] + 1
        extra = max(0, needed - (shape[d] + p.before[m] + p.after[m]))
        widths[d] = (p.before[m], p.after[m] + extra)
    return widths


def max_pool_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = PoolAttrs(attrs, "max_pool")
    x = arrays[0]
    out = p.out_shape(x.shape)
    xp = np.pad(x, _padding(p, x.shape, out), constant_values=-np.inf)
    result: np.ndarray | None = None
    for window in _windows(p, x.shape, out):
        result = xp[window] if result is None else np.maximum(result, xp[window])
    assert result is not None
    return [np.asarray(result, order="C")]


def _counts(p: PoolAttrs, shape: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """The divisor of every output position (broadcast over N and C): a product over the
    spatial axes of the taps inside the input (or the explicitly padded input)."""
    count = np.ones([1] * len(shape))
    for m, d in enumerate(p.axes):
        lo = -p.before[m] if p.count_include_pad else 0
        hi = shape[d] + p.after[m] if p.count_include_pad else shape[d]
        starts = np.arange(out[d]) * p.strides[m] - p.before[m]
        taps = starts[:, None] + np.arange(p.kernel[m])[None, :] * p.dilations[m]
        axis_count = ((taps >= lo) & (taps < hi)).sum(axis=1)
        view = [1] * len(shape)
        view[d] = out[d]
        count = count * axis_count.reshape(view)
    return count


def avg_pool_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    p = PoolAttrs(attrs, "avg_pool")
    x = arrays[0]
    out = p.out_shape(x.shape)
    xp = np.pad(x.astype(np.float64), _padding(p, x.shape, out))
    total = np.zeros(out, dtype=np.float64)
    for window in _windows(p, x.shape, out):
        total += xp[window]
    return [(total / _counts(p, x.shape, out)).astype(x.dtype)]


def _pool_declare(pool_type: str) -> DeclareFn:
    def declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
        p = PoolAttrs(attrs, f"{pool_type}_pool")
        return [
            topi.pool(
                tensors[0],
                p.kernel,
                p.strides,
                (*p.before, *p.after),
                pool_type,
                p.layout,
                p.count_include_pad,
                name,
                f"{pool_type}_pool",
                dilation=p.dilations,
                ceil_mode=p.ceil_mode,
            )
        ]

    return declare


MAX_POOL = OpDef(
    "max_pool",
    OpPattern.OUT_ELEMWISE_FUSABLE,
    _pool_infer("max_pool"),
    max_pool_reference,
    _pool_declare("max"),
)
AVG_POOL = OpDef(
    "avg_pool",
    OpPattern.OUT_ELEMWISE_FUSABLE,
    _pool_infer("avg_pool"),
    avg_pool_reference,
    _pool_declare("avg"),
)


def global_avg_pool_infer(attrs: Attrs, types: Sequence[TensorType]) -> list[TensorType]:
    op = "global_avg_pool"
    layout = choice(attrs, "layout", op, DATA_LAYOUTS)
    rank_is(types[0], len(layout), "data", op, layout)
    float_input(types[0], "data", op)
    axes = spatial_axes(layout)
    return [TensorType(tuple(1 if d in axes else n for d, n in enumerate(types[0].shape)), types[0].dtype)]


def global_avg_pool_reference(attrs: Attrs, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = arrays[0]
    axes = tuple(spatial_axes(attrs["layout"]))
    return [x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)]


def global_avg_pool_declare(attrs: Attrs, tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    return [topi.global_avg_pool(tensors[0], attrs["layout"], name=name)]


GLOBAL_AVG_POOL = OpDef(
    "global_avg_pool",
    OpPattern.OUT_ELEMWISE_FUSABLE,
    global_avg_pool_infer,
    global_avg_pool_reference,
    global_avg_pool_declare,
)

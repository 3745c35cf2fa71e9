"""Pooling over the spatial dimensions of any NC* / N*C layout (TVM's ``topi.nn.pool``).

``max`` pooling pads with the dtype's lowest value and reduces with max; ``avg`` pooling
pads with zeros, sums (op ``{name}_sum``) and divides (op ``name``) either by the window
size (``count_include_pad=True``, TVM topi's default) or by the number of real input
elements the window covers, computed from the output index. Axes are named
``ax0, ax1, ...`` and the window's reduction axes ``rv0, rv1, ...``, as in TVM.

ResNet-50 uses ``max_pool2d`` and ``global_avg_pool2d``; 3D-ResNet-18 the 3-D forms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ir import dtype as dt
from ir import te
from ir.expr import Expr, IterVar, max_expr, min_expr
from ir.te import Tensor
from ir.topi.pad import pad
from ir.topi.utils import (
    TopiError,
    as_tuple,
    ax_names,
    compute_named,
    conv_out_size,
    op_label,
    padding_nd,
    positive,
    scaled,
)

IntOrTuple = int | Sequence[int]
LAYOUTS = ("NCW", "NWC", "NCHW", "NHWC", "NCDHW", "NDHWC")


def _spatial_axes(layout: str, data: Tensor, op: str) -> list[int]:
    if layout not in LAYOUTS:
        raise TopiError(f"{op}: layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if data.ndim != len(layout):
        raise TopiError(
            f"{op}: data {list(data.shape)} has rank {data.ndim}, layout {layout} needs {len(layout)}"
        )
    return [d for d, c in enumerate(layout) if c in "DHW"]


def _lowest(dtype: str) -> float | int:
    if dt.is_float(dtype):
        return -math.inf
    return int(np.iinfo(dtype).min)


def pool(
    data: Tensor,
    kernel: IntOrTuple,
    stride: IntOrTuple | None,
    padding: IntOrTuple,
    pool_type: str,
    layout: str,
    count_include_pad: bool,
    name: str,
    func: str,
) -> Tensor:
    """Sliding-window max or average over the spatial axes of ``layout``.

    ``stride`` defaults to the kernel; ``padding`` is an int, one per spatial axis, or all
    "before" then all "after" pads.
    """
    op = op_label(func, name)
    axes = _spatial_axes(layout, data, op)
    nsp = len(axes)
    kernels = as_tuple(kernel, nsp, "kernel", op)
    strides = kernels if stride is None else as_tuple(stride, nsp, "stride", op)
    positive(kernels, "kernel", op)
    positive(strides, "stride", op)
    before, after = padding_nd(padding, nsp, op)
    if pool_type not in ("max", "avg"):
        raise TopiError(f"{op}: pool_type {pool_type!r} must be 'max' or 'avg'")
    out_shape = list(data.shape)
    for d, k, s, b, a in zip(axes, kernels, strides, before, after, strict=True):
        out_shape[d] = conv_out_size(data.shape[d], k, s, 1, b, a, op, layout[d])

    if any(before) or any(after):
        pad_before, pad_after = [0] * data.ndim, [0] * data.ndim
        for d, b, a in zip(axes, before, after, strict=True):
            pad_before[d], pad_after[d] = b, a
        pad_value = _lowest(data.dtype) if pool_type == "max" else 0.0
        padded = pad(data, pad_before, pad_after, pad_value=pad_value, name=f"{name}_pad")
    else:
        padded = data
    rv = [te.reduce_axis((0, k), name=f"rv{m}") for m, k in enumerate(kernels)]

    def window(idx: tuple[IterVar, ...]) -> Expr:
        index: list[Expr] = list(idx)
        for d, s, r in zip(axes, strides, rv, strict=True):
            index[d] = scaled(idx[d], s) + r
        return padded[tuple(index)]

    names = ax_names(data.ndim)
    if pool_type == "max":
        return compute_named(
            out_shape, names, lambda idx: te.max(window(idx), axis=rv), name=name, tag="pool_max"
        )
    pool_sum = compute_named(
        out_shape, names, lambda idx: te.sum(window(idx), axis=rv), name=f"{name}_sum", tag="pool_sum"
    )

    def average(idx: tuple[IterVar, ...]) -> Expr:
        if count_include_pad:
            return pool_sum[idx] / float(math.prod(kernels))
        count: Expr | None = None
        for d, k, s, b in zip(axes, kernels, strides, before, strict=True):
            start = scaled(idx[d], s) - b
            covered = min_expr(start + k, data.shape[d]) - max_expr(start, 0)
            count = covered if count is None else count * covered
        assert count is not None
        return pool_sum[idx] / count.astype(data.dtype)

    return compute_named(out_shape, names, average, name=name, tag="elemwise")


def max_pool2d(
    data: Tensor,
    kernel: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    layout: str = "NCHW",
    name: str = "max_pool2d",
) -> Tensor:
    """Max over kh x kw windows of an NCHW or NHWC tensor (padding never wins)."""
    if layout not in ("NCHW", "NHWC"):
        raise TopiError(f"max_pool2d: layout {layout!r} must be NCHW or NHWC")
    return pool(data, kernel, stride, padding, "max", layout, True, name, "max_pool2d")


def avg_pool2d(
    data: Tensor,
    kernel: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    layout: str = "NCHW",
    count_include_pad: bool = True,
    name: str = "avg_pool2d",
) -> Tensor:
    """Mean over kh x kw windows of an NCHW or NHWC tensor (see ``pool`` for padding)."""
    if layout not in ("NCHW", "NHWC"):
        raise TopiError(f"avg_pool2d: layout {layout!r} must be NCHW or NHWC")
    return pool(data, kernel, stride, padding, "avg", layout, count_include_pad, name, "avg_pool2d")


def max_pool3d(
    data: Tensor,
    kernel: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    layout: str = "NCDHW",
    name: str = "max_pool3d",
) -> Tensor:
    if layout not in ("NCDHW", "NDHWC"):
        raise TopiError(f"max_pool3d: layout {layout!r} must be NCDHW or NDHWC")
    return pool(data, kernel, stride, padding, "max", layout, True, name, "max_pool3d")


def avg_pool3d(
    data: Tensor,
    kernel: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    layout: str = "NCDHW",
    count_include_pad: bool = True,
    name: str = "avg_pool3d",
) -> Tensor:
    if layout not in ("NCDHW", "NDHWC"):
        raise TopiError(f"avg_pool3d: layout {layout!r} must be NCDHW or NDHWC")
    return pool(data, kernel, stride, padding, "avg", layout, count_include_pad, name, "avg_pool3d")


def global_avg_pool(data: Tensor, layout: str = "NCHW", name: str = "global_avg_pool") -> Tensor:
    """Mean over all spatial axes; they stay in the output with extent 1 (TVM's
    ``global_pool``): a sum ``{name}_sum`` then a division ``name``."""
    op = op_label("global_avg_pool", name)
    axes = _spatial_axes(layout, data, op)
    out_shape = [1 if d in axes else n for d, n in enumerate(data.shape)]
    rv = [te.reduce_axis((0, data.shape[d]), name=f"rv{m}") for m, d in enumerate(axes)]

    def total(idx: tuple[IterVar, ...]) -> Expr:
        index: list[Expr] = list(idx)
        for d, r in zip(axes, rv, strict=True):
            index[d] = r
        return te.sum(data[tuple(index)], axis=rv)

    names = ax_names(data.ndim)
    pool_sum = compute_named(out_shape, names, total, name=f"{name}_sum", tag="pool_sum")
    size = float(math.prod(data.shape[d] for d in axes))
    return compute_named(out_shape, names, lambda idx: pool_sum[idx] / size, name=name, tag="elemwise")


def global_avg_pool2d(data: Tensor, layout: str = "NCHW", name: str = "global_avg_pool2d") -> Tensor:
    """Mean over H and W: [N, C, H, W] -> [N, C, 1, 1] (or NHWC -> [N, 1, 1, C])."""
    if layout not in ("NCHW", "NHWC"):
        raise TopiError(f"global_avg_pool2d: layout {layout!r} must be NCHW or NHWC")
    return global_avg_pool(data, layout, name)


def global_avg_pool3d(data: Tensor, layout: str = "NCDHW", name: str = "global_avg_pool3d") -> Tensor:
    if layout not in ("NCDHW", "NDHWC"):
        raise TopiError(f"global_avg_pool3d: layout {layout!r} must be NCDHW or NDHWC")
    return global_avg_pool(data, layout, name)

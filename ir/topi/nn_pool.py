"""Pooling over the spatial dimensions of any NC* / N*C layout (TVM's ``topi.nn.pool``).

``max`` pooling pads with the dtype's lowest value and reduces with max; ``avg`` pooling
pads with zeros, sums (op ``{name}_sum``) and divides (op ``name``) either by the window
size (``count_include_pad=True``, TVM topi's default) or by the number of real input
elements the window covers, computed from the output index. Axes are named
``ax0, ax1, ...`` and the window's reduction axes ``rv0, rv1, ...``, as in TVM.

``pool`` also takes window ``dilation`` and ``ceil_mode`` (ONNX MaxPool/AveragePool):
ceil mode pads the end by what the last windows read past the input and its padding;
those positions never win a max and are never counted by an average.

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


def pool_out_size(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int, ceil_mode: bool
) -> int:
    """Output extent along one axis. Floor mode is ``conv_out_size``; ceil mode rounds up
    but drops a last window that would start past the input and its begin padding (as
    onnxruntime and PyTorch do)."""
    span = size + before + after - ((kernel - 1) * dilation + 1)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + before:
        out -= 1
    return out


def _taps(out: Expr, extent: int, k: int, s: int, d: int, before: int, lo: int, hi: int) -> Expr | int:
    """How many of the k taps ``out * s - before + t * d`` (t < k) of output ``out`` lie in
    [lo, hi): the divisor of an average along one axis. A constant k when every window of
    the ``extent`` outputs fits."""
    if lo <= -before and (extent - 1) * s - before + (k - 1) * d < hi:
        return k
    start = scaled(out, s) - before
    if d == 1:
        return min_expr(start + k, hi) - max_expr(start, lo)
    first = max_expr(te.floordiv(lo - start + (d - 1), d), 0)
    last = min_expr(te.floordiv(hi - start + (d - 1), d), k)
    return last - first


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
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """Sliding-window max or average over the spatial axes of ``layout``.

    ``stride`` defaults to the kernel; ``padding`` is an int, one per spatial axis, or all
    "before" then all "after" pads; ``dilation`` spaces the taps of a window. In
    ``ceil_mode`` the output extent rounds up (``pool_out_size``) and the positions the last
    windows read past the end padding count as padding that is never counted: an average
    divides by the taps inside the input (``count_include_pad=False``) or inside the
    explicitly padded input (True).
    """
    op = op_label(func, name)
    axes = _spatial_axes(layout, data, op)
    nsp = len(axes)
    kernels = as_tuple(kernel, nsp, "kernel", op)
    strides = kernels if stride is None else as_tuple(stride, nsp, "stride", op)
    dilations = as_tuple(dilation, nsp, "dilation", op)
    positive(kernels, "kernel", op)
    positive(strides, "stride", op)
    positive(dilations, "dilation", op)
    before, after = padding_nd(padding, nsp, op)
    if pool_type not in ("max", "avg"):
        raise TopiError(f"{op}: pool_type {pool_type!r} must be 'max' or 'avg'")
    out_shape = list(data.shape)
    extra = [0] * nsp  # what ceil mode reads past the end padding
    for m, (d, k, s, dil, b, a) in enumerate(
        zip(axes, kernels, strides, dilations, before, after, strict=True)
    ):
        conv_out_size(data.shape[d], k, s, dil, b, a, op, layout[d])  # the window must fit
        out_shape[d] = pool_out_size(data.shape[d], k, s, dil, b, a, ceil_mode)
        extra[m] = max(0, (out_shape[d] - 1) * s + (k - 1) * dil + 1 - (data.shape[d] + b + a))

    if any(before) or any(after) or any(extra):
        pad_before, pad_after = [0] * data.ndim, [0] * data.ndim
        for d, b, a, e in zip(axes, before, after, extra, strict=True):
            pad_before[d], pad_after[d] = b, a + e
        pad_value = _lowest(data.dtype) if pool_type == "max" else 0.0
        padded = pad(data, pad_before, pad_after, pad_value=pad_value, name=f"{name}_pad")
    else:
        padded = data
    rv = [te.reduce_axis((0, k), name=f"rv{m}") for m, k in enumerate(kernels)]

    def window(idx: tuple[IterVar, ...]) -> Expr:
        index: list[Expr] = list(idx)
        for d, s, r, dil in zip(axes, strides, rv, dilations, strict=True):
            index[d] = scaled(idx[d], s) + scaled(r, dil)
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
        count: Expr | int = 1
        for d, k, s, dil, b, a in zip(axes, kernels, strides, dilations, before, after, strict=True):
            lo, hi = (-b, data.shape[d] + a) if count_include_pad else (0, data.shape[d])
            taps = _taps(idx[d], out_shape[d], k, s, dil, b, lo, hi)
            if isinstance(count, int) and isinstance(taps, int):
                count *= taps
            elif isinstance(count, int) and count == 1:
                count = taps
            else:
                count = count * taps
        if isinstance(count, int):
            return pool_sum[idx] / float(count)
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

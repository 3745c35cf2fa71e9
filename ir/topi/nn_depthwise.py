"""Depthwise 2-D convolution (the paper's DEP workload; MobileNet-V2's middle layers).

Each input channel c is convolved with its own ``multiplier`` filters, giving output
channels ``c * multiplier + q``; there is no reduction over channels, only over the
kernel window, which is why Ansor finds little data reuse here (paper section 7.1)::

    out[b, c, i, j] = sum_{di, dj} pad[b, c // m, i*s + di*d, j*s + dj*d] * w[c // m, c % m, di, dj]

Layouts as TVM's topi: NCHW data with kernel [C, m, kh, kw]; NHWC data with kernel
[kh, kw, C, m]. Names: ``DepthwiseConv2d`` style axes ``b c i j`` / ``b i j c``, reduce
``di dj``; the padding op is ``{name}_pad``.
"""

from __future__ import annotations

from ir import te
from ir.expr import Expr, IterVar
from ir.layout_rewrite import layout_free_attrs
from ir.te import Tensor
from ir.topi.nn_conv import IntOrTuple
from ir.topi.pad import pad
from ir.topi.utils import (
    TopiError,
    as_tuple,
    check_rank,
    conv_out_size,
    op_label,
    padding_nd,
    positive,
    window_index,
)


def _depthwise(
    data: Tensor,
    kernel: Tensor,
    channels_last: bool,
    stride: IntOrTuple,
    padding: IntOrTuple,
    dilation: IntOrTuple,
    out_dtype: str | None,
    name: str,
) -> Tensor:
    layout, kernel_layout = (
        ("NHWC", "[kh, kw, C, multiplier]") if channels_last else ("NCHW", "[C, multiplier, kh, kw]")
    )
    op = op_label(f"depthwise_conv2d_{layout.lower()}", name)
    check_rank(data, 4, "data", op, layout)
    check_rank(kernel, 4, "kernel", op, kernel_layout)
    sh, sw = as_tuple(stride, 2, "stride", op)
    dh, dw = as_tuple(dilation, 2, "dilation", op)
    positive((sh, sw), "stride", op)
    positive((dh, dw), "dilation", op)
    (pt, pl), (pb, pr) = padding_nd(padding, 2, op)
    if channels_last:
        batch, in_h, in_w, channels = data.shape
        kh, kw, k_c, mult = kernel.shape
    else:
        batch, channels, in_h, in_w = data.shape
        k_c, mult, kh, kw = kernel.shape
    if k_c != channels:
        raise TopiError(
            f"{op}: kernel {list(kernel.shape)} ({kernel_layout}) has {k_c} channels, data has {channels}"
        )
    out_h = conv_out_size(in_h, kh, sh, dh, pt, pb, op, "height")
    out_w = conv_out_size(in_w, kw, sw, dw, pl, pr, op, "width")
    if pt or pl or pb or pr:
        before = [0, pt, pl, 0] if channels_last else [0, 0, pt, pl]
        after = [0, pb, pr, 0] if channels_last else [0, 0, pb, pr]
        padded = pad(data, before, after, name=f"{name}_pad")
    else:
        padded = data
    dtype = out_dtype or data.dtype
    di = te.reduce_axis((0, kh), name="di")
    dj = te.reduce_axis((0, kw), name="dj")

    def channel_and_q(c: IterVar) -> tuple[Expr, Expr | int]:
        return (c, 0) if mult == 1 else (c // mult, c % mult)

    def read(b: IterVar, i: IterVar, j: IterVar, c: IterVar) -> Expr:
        ci, q = channel_and_q(c)
        y, x = window_index(i, sh, di, dh), window_index(j, sw, dj, dw)
        if channels_last:
            xv, wv = padded[b, y, x, ci], kernel[di, dj, ci, q]
        else:
            xv, wv = padded[b, ci, y, x], kernel[ci, q, di, dj]
        return te.sum(xv.astype(dtype) * wv.astype(dtype), axis=[di, dj])

    out_c = channels * mult
    tag = f"depthwise_conv2d_{layout.lower()}"
    attrs = layout_free_attrs(kernel)
    if channels_last:
        return te.compute(
            (batch, out_h, out_w, out_c), lambda b, i, j, c: read(b, i, j, c), name=name, tag=tag, attrs=attrs
        )
    return te.compute(
        (batch, out_c, out_h, out_w), lambda b, c, i, j: read(b, i, j, c), name=name, tag=tag, attrs=attrs
    )


def depthwise_conv2d_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    out_dtype: str | None = None,
    name: str = "depthwise_conv2d_nchw",
) -> Tensor:
    """Depthwise convolution, data [N, C, H, W], kernel [C, m, kh, kw] -> [N, C*m, H', W']."""
    return _depthwise(data, kernel, False, stride, padding, dilation, out_dtype, name)


def depthwise_conv2d_nhwc(
    data: Tensor,
    kernel: Tensor,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    out_dtype: str | None = None,
    name: str = "depthwise_conv2d_nhwc",
) -> Tensor:
    """Depthwise convolution, data [N, H, W, C], kernel [kh, kw, C, m] -> [N, H', W', C*m]."""
    return _depthwise(data, kernel, True, stride, padding, dilation, out_dtype, name)
